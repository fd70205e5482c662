/*  forms.c: recognisers for identifiers, dates and addresses.

    Each function looks only at the `len` bytes it is given and never
    past them. Called by the codec (envelope keys) and the validator
    (`format`). */

/* timegm() */
#define _DEFAULT_SOURCE
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "maillage/forms.h"
#include "maillage/limits.h"

/* The length (1-4) of the valid UTF-8 character at p, with `left`
   bytes readable; 0 if the bytes there are not one. */
static size_t
s_utf8_char(const unsigned char *p, size_t left)
{
    unsigned c = p[0];
    size_t need;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        cp = c & 0x1F;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        cp = c & 0x0F;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        cp = c & 0x07;
    }
    else
        return 0;
    if (left - 1 < need)
        return 0;
    for (size_t k = 1; k <= need; k++) {
        unsigned cc = p[k];
        if ((cc & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (cc & 0x3F);
    }
    /* Overlong forms, surrogates and values past U+10FFFF. */
    if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000)
        || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return need + 1;
}

bool
mlg_utf8_check(const char *s, size_t len, size_t *chars)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n = 0;
    while (i < len) {
        size_t k = s_utf8_char(p + i, len - i);
        if (!k)
            return false;
        i += k;
        n++;
    }
    if (chars)
        *chars = n;
    return true;
}

size_t
mlg_text_clean(char *out, size_t cap, const char *s, size_t len, size_t max_chars)
{
    assert(out && cap > 0);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0, n = 0;
    while (i < len && n < max_chars) {
        size_t k = s_utf8_char(p + i, len - i);
        if (k == 0 || p[i] == 0) { /* a stray byte, or NUL: \xHH */
            if (o + 4 >= cap || n + 4 > max_chars)
                break;
            snprintf(out + o, 5, "\\x%02X", p[i]);
            o += 4;
            i++;
            n += 4;
            continue;
        }
        if (o + k >= cap)
            break;
        memcpy(out + o, p + i, k);
        o += k;
        i += k;
        n++;
    }
    out[o] = '\0';
    return o;
}

static bool
s_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool
s_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool
mlg_is_agency_id(const char *s, size_t len)
{
    if (len < 1 || len > MLG_AGENCY_ID_MAX || !s_lower(s[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!s_lower(s[i]) && !s_digit(s[i]) && s[i] != '-')
            return false;
    return true;
}

static bool
s_uuid(const char *s, size_t len, bool lower_only)
{
    if (len != MLG_UUID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        }
        else if (!s_digit(c) && !(c >= 'a' && c <= 'f')
                 && (lower_only || !(c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

bool
mlg_is_message_id(const char *s, size_t len)
{
    return s_uuid(s, len, true);
}

bool
mlg_is_uuid(const char *s, size_t len)
{
    return s_uuid(s, len, false);
}

bool
mlg_is_event_type(const char *s, size_t len)
{
    if (len < 1 || len > MLG_TYPE_MAX)
        return false;
    bool word_start = true;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (word_start)
                return false; /* empty word */
            word_start = true;
        }
        else if (s_lower(s[i]))
            word_start = false;
        else
            return false;
    }
    return !word_start;
}

bool
mlg_is_subject(const char *s, size_t len)
{
    size_t chars;
    if (len < 1 || !mlg_utf8_check(s, len, &chars) || chars > MLG_SUBJECT_MAX)
        return false;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7F)
            return false;
        /* C1 controls U+0080..U+009F are encoded C2 80..C2 9F. */
        if (p[i] == 0xC2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F)
            return false;
    }
    return true;
}

/* Reads exactly n digits at s; -1 if any is not a digit. */
static int
s_num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!s_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static bool
s_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

bool
mlg_is_date(const char *s, size_t len)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len != 10 || s[4] != '-' || s[7] != '-')
        return false;
    int y = s_num(s, 4), m = s_num(s + 5, 2), d = s_num(s + 8, 2);
    if (y < 0 || m < 1 || m > 12 || d < 1)
        return false;
    int max = days[m - 1] + (m == 2 && s_leap(y) ? 1 : 0);
    return d <= max;
}

bool
mlg_is_date_time(const char *s, size_t len)
{
    /* 2025-01-31T10:20:30Z is the shortest form: 20 bytes. */
    if (len < 20 || len > 64 || !mlg_is_date(s, 10))
        return false;
    if (s[10] != 'T' && s[10] != 't')
        return false;
    const char *t = s + 11;
    if (t[2] != ':' || t[5] != ':')
        return false;
    int hh = s_num(t, 2), mm = s_num(t + 3, 2), ss = s_num(t + 6, 2);
    /* RFC 3339 allows a leap second, 60. */
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
        return false;
    size_t i = 19;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && s_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    if (i >= len)
        return false;
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len)
        return true;
    if ((s[i] != '+' && s[i] != '-') || len - i != 6 || s[i + 3] != ':')
        return false;
    int oh = s_num(s + i + 1, 2), om = s_num(s + i + 4, 2);
    return oh >= 0 && oh <= 23 && om >= 0 && om <= 59;
}

bool
mlg_is_email(const char *s, size_t len)
{
    if (len < 3 || len > 254)
        return false;
    const char *at = memchr(s, '@', len);
    if (!at || at == s || memchr(at + 1, '@', len - (size_t)(at - s) - 1))
        return false;
    size_t local = (size_t)(at - s), dlen = len - local - 1;
    if (local > 64 || dlen < 3)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7F || c == '<' || c == '>' || c == ',' || c == ';'
            || c == '"' || c == '\\' || c == '(' || c == ')' || c == '[' || c == ']')
            return false;
    }
    const char *d = at + 1;
    if (d[0] == '.' || d[dlen - 1] == '.' || !memchr(d, '.', dlen))
        return false;
    for (size_t i = 0; i + 1 < dlen; i++)
        if (d[i] == '.' && d[i + 1] == '.')
            return false;
    return mlg_utf8_check(s, len, NULL);
}

/* RFC 3339 text to a timestamp; false if it is not one. */
bool
mlg_date_time_parse(const char *s, size_t len, mlg_time_t *t)
{
    if (!mlg_is_date_time(s, len))
        return false;
    struct tm tm = {0};
    tm.tm_year = atoi(s) - 1900;
    tm.tm_mon = atoi(s + 5) - 1;
    tm.tm_mday = atoi(s + 8);
    tm.tm_hour = atoi(s + 11);
    tm.tm_min = atoi(s + 14);
    tm.tm_sec = atoi(s + 17);
    int64_t sec = (int64_t)timegm(&tm);
    uint32_t nsec = 0;
    size_t i = 19;
    if (s[i] == '.') {
        uint32_t scale = 100000000;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            nsec += (uint32_t)(s[i] - '0') * scale;
            scale /= 10;
        }
    }
    if (s[i] == '+' || s[i] == '-') {
        int offset = atoi(s + i + 1) * 3600 + atoi(s + i + 4) * 60;
        sec += s[i] == '+' ? -offset : offset;
    }
    t->sec = sec;
    t->nsec = nsec;
    return true;
}

bool
mlg_time_format(mlg_time_t t, char *buf, size_t len)
{
    time_t sec = (time_t)t.sec;
    struct tm tm;
    if (t.nsec >= 1000000000u || !gmtime_r(&sec, &tm) || tm.tm_year + 1900 < 0
        || tm.tm_year + 1900 > 9999)
        return false;
    int n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (unsigned)(t.nsec / 1000));
    return n > 0 && (size_t)n < len;
}
