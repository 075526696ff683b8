/*
 * aivaultd's process hardening that Node has no API for: prctl(PR_SET_DUMPABLE, 0).
 *
 * A non-dumpable process cannot be ptrace-attached by, and its /proc/<pid>/{mem,environ,maps,...} cannot be
 * opened by, other processes of the same user (the kernel makes those files root-owned). It also blocks core
 * dumps. No maintained npm package wraps prctl, so this is the whole addon: two N-API functions, no state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <node_api.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[128];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, "EPRCTL", msg);
  return NULL;
}

/* disable(): prctl(PR_SET_DUMPABLE, 0); throws on failure. */
static napi_value disable(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef __linux__
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return throw_errno(env, "prctl(PR_SET_DUMPABLE, 0)", errno);
  return NULL;
#else
  napi_throw_error(env, "ENOTSUP", "PR_SET_DUMPABLE is Linux-only");
  return NULL;
#endif
}

/* isDumpable(): prctl(PR_GET_DUMPABLE) as a number (0, 1 or 2). */
static napi_value is_dumpable(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
#ifdef __linux__
  int v = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  if (v < 0) return throw_errno(env, "prctl(PR_GET_DUMPABLE)", errno);
#else
  int v = 1;
#endif
  napi_create_int32(env, v, &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"disable", NULL, disable, NULL, NULL, NULL, napi_enumerable, NULL},
      {"isDumpable", NULL, is_dumpable, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
