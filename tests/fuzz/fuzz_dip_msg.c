/*
 * Fuzz target for the worker-events decoder: any bytes must decode or be
 * refused, never crash or leak; a decoded message must re-encode, and the
 * re-encoded frame must decode to a message that encodes to the very same
 * bytes (encode . decode is stable).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dip_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dip_msg_t m, m2;
    char err[256];
    bson_t *a, *b;
    if (dip_msg_decode(data, size, &m, err, sizeof(err)) != 0)
        return 0;
    a = dip_msg_encode(&m);
    if (a == NULL)
        abort(); /* every accepted message has an encoding */
    if (dip_msg_decode(bson_get_data(a), a->len, &m2, err, sizeof(err)) != 0)
        abort(); /* what we encode, we decode */
    if (m2.type != m.type)
        abort();
    b = dip_msg_encode(&m2);
    if (b == NULL || a->len != b->len ||
        memcmp(bson_get_data(a), bson_get_data(b), a->len) != 0)
        abort();
    bson_destroy(a);
    bson_destroy(b);
    return 0;
}
