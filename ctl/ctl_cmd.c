/* ctl: placeholder */
#include "ctl_cmd.h"
int ctl_cmd_placeholder(void)
{
    return 0;
}
