/*
 * hex: the value of one hexadecimal digit (chunk sizes, percent-escapes,
 * JSON \u escapes).
 */
#ifndef LIB_HEX_H
#define LIB_HEX_H

/* 0..15 for 0-9, a-f, A-F; -1 for anything else. */
static inline int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

#endif
