/* init.c - process-wide initialisation and version. */
#include <curl/curl.h>
#include <pthread.h>

#include "autodeploy/common.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int ad_global_init(void)
{
  pthread_once(&once, init_once);
  return 0;
}

const char *ad_version(void) { return AD_VERSION_STRING; }
