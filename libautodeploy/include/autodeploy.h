/*
 * autodeploy.h - the umbrella header of libautodeploy.
 *
 *   common.h   errors, log hook, global init, export macro
 *   decoder.h  streaming decoder of the master event bus framing
 *   event.h    events and typed access to their data
 *   bus.h      subscribe, dispatch to workers, fan out, fire
 *   engine.h   the engine and ad_call (what the Salt shims drive)
 *   notify.h   alerts: DingTalk, SMTP, webhook
 *
 * Reference: docs/api.md. Build flags: pkg-config --cflags --libs autodeploy
 */
#ifndef AUTODEPLOY_H
#define AUTODEPLOY_H

#include "autodeploy/common.h"
#include "autodeploy/decoder.h"
#include "autodeploy/event.h"
#include "autodeploy/bus.h"
#include "autodeploy/engine.h"
#include "autodeploy/notify.h"

#endif
