#ifndef CTL_CMD_H
#define CTL_CMD_H
int ctl_cmd_placeholder(void);
#endif
