/* opts_parse and opts_parse_bool: the "key=value,..." grammar every option uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "vmm/config.h"
#include "vmm/options.h"

static struct opt_pair *pair(GPtrArray *a, guint i)
{
    assert_true(i < a->len);
    return a->pdata[i];
}

static void assert_pair(GPtrArray *a, guint i, const char *key, const char *value)
{
    struct opt_pair *o = pair(a, i);
    assert_string_equal(o->key, key);
    if (value)
        assert_string_equal(o->value, value);
    else
        assert_null(o->value);
}

static void test_implied_key(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) a = opts_parse("512M,hugepages=on", "size", &err);
    assert_non_null(a);
    assert_null(err);
    assert_int_equal(a->len, 2);
    assert_pair(a, 0, "size", "512M");
    assert_pair(a, 1, "hugepages", "on");

    /* Only the first item may be implied; later bare words are keys. */
    g_autoptr(GPtrArray) b = opts_parse("2,max", "boot", &err);
    assert_int_equal(b->len, 2);
    assert_pair(b, 0, "boot", "2");
    assert_pair(b, 1, "max", NULL);

    /* An explicit first key wins over the implied one. */
    g_autoptr(GPtrArray) c = opts_parse("max=4,boot=2", "boot", &err);
    assert_pair(c, 0, "max", "4");
    assert_pair(c, 1, "boot", "2");

    /* Without an implied key a bare word is a key with no value. */
    g_autoptr(GPtrArray) d = opts_parse("readonly,x=1", NULL, &err);
    assert_pair(d, 0, "readonly", NULL);
    assert_pair(d, 1, "x", "1");
}

static void test_values(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) a = opts_parse("k=a=b,e=", NULL, &err);
    assert_int_equal(a->len, 2);
    assert_pair(a, 0, "k", "a=b");      /* only the first '=' splits */
    assert_pair(a, 1, "e", "");

    g_autoptr(GPtrArray) empty = opts_parse("", "size", &err);
    assert_non_null(empty);
    assert_int_equal(empty->len, 0);

    g_autoptr(GPtrArray) trailing = opts_parse("a=1,", NULL, &err);
    assert_int_equal(trailing->len, 1);
    assert_pair(trailing, 0, "a", "1");
}

static void test_comma_escape(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) a = opts_parse("file=/tmp/a,,b,,,x=1", NULL, &err);
    assert_non_null(a);
    assert_int_equal(a->len, 2);
    assert_pair(a, 0, "file", "/tmp/a,b,");
    assert_pair(a, 1, "x", "1");

    g_autoptr(GPtrArray) b = opts_parse("a,,b", "path", &err);
    assert_int_equal(b->len, 1);
    assert_pair(b, 0, "path", "a,b");

    g_autoptr(GPtrArray) c = opts_parse("v=,,", NULL, &err);
    assert_int_equal(c->len, 1);
    assert_pair(c, 0, "v", ",");
}

static void test_empty_key(void **state)
{
    static const char *const bad[] = { "=5", "a=1,=2", ",a=1" };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;
        GPtrArray *a = opts_parse(bad[i], NULL, &err);
        assert_null(a);
        assert_non_null(err);
        assert_true(g_error_matches(err, CONFIG_ERROR, 0));
        assert_non_null(strstr(err->message, "empty key"));
    }
    /* With an implied key an empty first item is an empty value, not a key. */
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) a = opts_parse(",a=1", "size", &err);
    assert_non_null(a);
    assert_pair(a, 0, "size", "");
}

static void test_bool(void **state)
{
    static const char *const yes[] = { "on", "yes", "true", "1", "ON", "Yes", "TRUE" };
    static const char *const no[] = { "off", "no", "false", "0", "OFF", "No", "False" };
    static const char *const bad[] = { "", "maybe", "2", "onn", "of", "y" };
    bool v;
    for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
        v = false;
        assert_int_equal(opts_parse_bool(yes[i], &v), 0);
        assert_true(v);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(no); i++) {
        v = true;
        assert_int_equal(opts_parse_bool(no[i], &v), 0);
        assert_false(v);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        v = true;
        assert_int_equal(opts_parse_bool(bad[i], &v), -EINVAL);
        assert_true(v);     /* untouched on error */
    }
    assert_int_equal(opts_parse_bool(NULL, &v), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_implied_key),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_comma_escape),
        cmocka_unit_test(test_empty_key),
        cmocka_unit_test(test_bool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
