#include "rt.h"

/* Finds "key=" at the start of a word; returns a pointer to the value. */
static const char *find(const char *key, bool *bare)
{
    size_t kl = strlen(key);
    const char *s = boot_info.cmdline;
    while (*s) {
        while (*s == ' ')
            s++;
        if (strncmp(s, key, kl) == 0 && (s[kl] == '=' || s[kl] == ' ' || s[kl] == '\0')) {
            *bare = s[kl] != '=';
            return *bare ? s + kl : s + kl + 1;
        }
        while (*s && *s != ' ')
            s++;
    }
    return NULL;
}

bool cmdline_has(const char *key)
{
    bool bare;
    return find(key, &bare) != NULL;
}

bool cmdline_get(const char *key, char *buf, size_t len)
{
    bool bare;
    const char *v = find(key, &bare);
    if (!v || len == 0)
        return false;
    size_t i = 0;
    while (!bare && v[i] && v[i] != ' ' && i + 1 < len) {
        buf[i] = v[i];
        i++;
    }
    buf[i] = '\0';
    return true;
}

uint64_t cmdline_get_u64(const char *key, uint64_t def)
{
    char buf[24];
    if (!cmdline_get(key, buf, sizeof(buf)) || !buf[0])
        return def;
    uint64_t v = 0;
    for (const char *p = buf; *p; p++) {
        if (*p < '0' || *p > '9')
            return def;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    return v;
}
