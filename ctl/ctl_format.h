/*
 * ctl_format: what `show` says of an import's format: the setting the queue
 * document gives (additional_data.format) and the decisions its worker made
 * for the columns left to the file (checkpoint.format.columns, recorded
 * from the first batch on). The supervisor's reply does not carry them, so
 * they are read from the queue document itself, bounded by --timeout.
 */
#ifndef CTL_FORMAT_H
#define CTL_FORMAT_H

#include <jansson.h>

#include "ctl_client.h"

/* Sets import["format"] to {setting, decisions} (either may be null) when
 * the queue document of id has a format; leaves import as it is when it
 * has none or the database cannot be read. */
void ctl_format_attach(const ctl_opts_t *o, const char *id, json_t *import);

/* Prints import["format"] as labelled lines (nothing without one). */
void ctl_format_print(const json_t *import);

#endif
