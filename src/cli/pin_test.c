#include "pin.h"

#include <stdlib.h>
#include <string.h>

#include "test.h"

int main(void)
{
    char *s = base64_encode("s3cr3t", 6);
    is_str(s, "czNjcjN0", "base64 of s3cr3t");
    free(s);
    s = base64_encode(":s3cr3t", 7);
    is_str(s, "OnMzY3IzdA==", "Basic credentials of §1.2");
    free(s);
    s = base64_encode("ab", 2);
    is_str(s, "YWI=", "one pad");
    free(s);

    unsigned char out[64];
    size_t bad = 0;
    is_int(base64_decode("OnMzY3IzdA==", out, sizeof(out), &bad), 7, "decode length");
    ok(!memcmp(out, ":s3cr3t", 7), "decode bytes");
    is_int(base64_decode("abc", out, sizeof(out), &bad), -1, "short input rejected");
    is_int(base64_decode("ab!d", out, sizeof(out), &bad), -1, "bad byte rejected");
    is_int(bad, 2, "bad byte offset");
    is_int(base64_decode("a=bc", out, sizeof(out), &bad), -1, "pad in the middle rejected");

    /* SHA-256 of the three bytes "abc", base64: a known vector */
    s = pin_of_der("abc", 3);
    is_str(s, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", "pin of a DER blob");
    free(s);

    unsigned char pin[PIN_LEN];
    size_t len = 0;
    struct err *e = NULL;
    ok(pin_decode("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", pin, &len, &e) == 0,
       "pin decodes");
    is_int(len, PIN_LEN, "pin length");
    ok(pin_decode("abc", pin, &len, &e) < 0, "bad pin rejected");
    is_str(e ? e->msg : NULL, "error decoding tls pin: illegal base64 data at input byte 0",
           "Go's message");
    err_free(e);
    return test_done();
}
