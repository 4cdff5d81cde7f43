/*
 * statemachine.h — the built-in workflow type `statemachine` (statemachine.c): registered with
 * the other built-ins by aj_register_builtins(). Its definition is checked by sm_def.h.
 */
#ifndef AJ_RUNTIME_STATEMACHINE_H
#define AJ_RUNTIME_STATEMACHINE_H

#include "aj.h"

/* Registers the `statemachine` workflow type on the engine. */
int aj__statemachine_register(aj_engine *e);

#endif
