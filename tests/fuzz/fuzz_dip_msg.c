/*
 * Fuzz target for the worker-events decoder: any bytes must decode or be
 * refused, never crash or leak; a decoded message must re-encode.
 */
#include <stdint.h>
#include <stdlib.h>

#include "dip_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dip_msg_t m;
    char err[256];
    if (dip_msg_decode(data, size, &m, err, sizeof(err)) == 0)
        dip_msg_release(&m);
    return 0;
}
