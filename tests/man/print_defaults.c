/*
 * Prints the defaults the code has, one NAME=value per line, for
 * tests/man/defaults.py to hold the manual pages to: every setting as
 * dip_config_to_env writes it from an empty environment, and the
 * dealimportctl defaults its pages state. Run with an empty environment.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ctl_client.h"
#include "dip_config.h"
#include "dip_ctl.h"

int main(void)
{
    dip_config_t cfg;
    char *env[DIP_CONFIG_ENV_MAX], err[512];
    int n;
    dip_config_init(&cfg);
    if (dip_config_load(&cfg, NULL, 0, err, sizeof(err)) < 0) {
        fprintf(stderr, "print_defaults: %s\n", err);
        return 1;
    }
    n = dip_config_to_env(&cfg, env);
    for (int i = 0; i < n; i++) {
        printf("%s\n", env[i]);
        free(env[i]);
    }
    printf("CTL_TIMEOUT_S=%d\n", CTL_DEFAULT_TIMEOUT_MS / 1000);
    printf("CTL_LIST_LIMIT=%d\n", DIP_CTL_LIST_DEFAULT);
    dip_config_release(&cfg);
    return 0;
}
