/* help.h - the help screen: the keys and what the dashboard's numbers mean. */
#ifndef COUPONCTL_HELP_H
#define COUPONCTL_HELP_H

#include "ui.h"

/* Draws the help over the whole screen but the footer. */
void help_draw(const struct ui *ui);

/* Any key but a resize closes the help (UI_ACT_CLOSE). */
enum ui_action help_key(const struct ui_key *k);

#endif
