/*
 * Fuzz target for the control protocol: any bytes must decode as a request
 * or be refused with a sentence, never crash or leak; a decoded request must
 * re-encode to a request that decodes the same. The same bytes are also fed
 * to the reply decoder of every command.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dip_ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dip_ctl_request_t req, again;
    dip_ctl_reply_t reply;
    char err[512];
    if (dip_ctl_request_decode(data, size, &req, err, sizeof(err)) == 0) {
        char *s = dip_ctl_request_encode(&req);
        if (s == NULL ||
            dip_ctl_request_decode(s, strlen(s), &again, err, sizeof(err)) !=
                0 ||
            memcmp(&req, &again, sizeof(req)) != 0)
            abort();
        free(s);
    } else if (err[0] == '\0') {
        abort(); /* every refusal says why */
    }
    for (int c = DIP_CTL_STATUS; c <= DIP_CTL_CANCEL; c++)
        if (dip_ctl_reply_decode(data, size, (dip_ctl_cmd_t)c, &reply, err,
                                 sizeof(err)) == 0)
            dip_ctl_reply_release(&reply);
    return 0;
}
