/* The QMP fuzz target, shared by its libFuzzer build and its replay driver. */
#ifndef TESTS_FUZZ_FUZZ_QMP_H
#define TESTS_FUZZ_FUZZ_QMP_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
