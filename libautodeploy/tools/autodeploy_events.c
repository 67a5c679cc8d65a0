/*
 * autodeploy_events.c - autodeploy-events: print a Salt master's events as
 * JSON lines, or fire one event into it, through libautodeploy's bus.
 *
 *   autodeploy-events [WHERE] [-m GLOB]... [--count N] [--timeout SECS]
 *                     [--pretty] [--fanout ENDPOINT] [--fanout-format F]
 *                     [--stats] [-v]
 *   autodeploy-events fire TAG [JSON_OBJECT] [WHERE]
 *
 * Printing happens in the bus handler, on its one worker thread (workers=1
 * keeps bus order), under a lock shared with the log handler so stdout and
 * stderr lines never interleave mid-line. SIGINT/SIGTERM and the timeout
 * are taken by a helper thread with sigtimedwait (every other thread has
 * them blocked), which calls ad_bus_stop; the main thread runs the bus and
 * so sees a start-up failure directly.
 *
 * Exit: 0 done (N events printed, a signal, or --timeout without --count);
 * 1 a runtime error (cannot start, cannot write stdout, fire failed);
 * 2 --timeout elapsed before --count events; 64 bad arguments.
 */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <autodeploy.h>

#include "master_conf.h"

#define PROG "autodeploy-events"
#define MAX_GLOBS 64
#define DEFAULT_CONF "/etc/salt/master"

static const char USAGE[] =
    "usage: " PROG " [WHERE] [-m GLOB]... [--count N] [--timeout SECS]\n"
    "         [--pretty] [--fanout ENDPOINT] [--fanout-format json|msgpack]\n"
    "         [--stats] [-v]\n"
    "       " PROG " fire TAG [JSON_OBJECT] [WHERE] [-v]\n"
    "       " PROG " --show-config [WHERE]\n"
    "\n"
    "Print the events of a Salt master's event bus whose tag matches a GLOB\n"
    "(default '*'; '*' crosses '/') as JSON lines {\"tag\": ..., \"data\": ...},\n"
    "or fire one event (data: a JSON object, default {}) into the master.\n"
    "\n"
    "WHERE (one of; default: " DEFAULT_CONF " if it exists, else Salt's\n"
    "defaults, sock_dir /var/run/salt/master):\n"
    "  -c, --config PATH     master config file (or the directory holding\n"
    "                        'master'); follows default_include and include\n"
    "  -s, --sock-dir DIR    the master's sock_dir\n"
    "      --pub PATH        master_event_pub.ipc to read (listen only)\n"
    "      --pull PATH       master_event_pull.ipc to write (fire only)\n"
    "      --tcp HOST:PORT   ipc_mode tcp: tcp_master_pub_port to read, or\n"
    "                        tcp_master_pull_port to fire into\n"
    "\n"
    "Listen options:\n"
    "  -m, --match GLOB      print events whose tag matches (repeatable)\n"
    "      --count N         exit 0 after N events\n"
    "      --timeout SECS    exit after SECS: 2 if --count was not reached,\n"
    "                        else 0\n"
    "      --pretty          indent the JSON (one event spans lines)\n"
    "      --fanout ENDPOINT also republish every event on a ZeroMQ PUB\n"
    "                        socket bound there as [tag, payload]\n"
    "      --fanout-format F payload as msgpack (default, as Salt sent it)\n"
    "                        or json\n"
    "      --stats           print the bus counters as JSON to stderr at exit\n"
    "      --show-config     print where the bus is, as JSON, and exit\n"
    "Common:\n"
    "  -v, --verbose         debug log lines on stderr\n"
    "  -h, --help            this text\n"
    "\n"
    "Exit status: 0 done; 1 runtime error; 2 --timeout before --count;\n"
    "64 bad arguments. SIGINT/SIGTERM stop cleanly with status 0.\n";

/* Options seen, so that each mode can refuse the other's. */
enum { O_CONF = 1, O_SOCK = 2, O_PUB = 4, O_PULL = 8, O_TCP = 16,
       O_MATCH = 32, O_COUNT = 64, O_TIMEOUT = 128, O_PRETTY = 256,
       O_FANOUT = 512, O_FANFMT = 1024, O_STATS = 2048, O_SHOW = 4096 };

typedef struct {
  unsigned seen;
  const char *conf, *sock_dir, *pub, *pull;
  char tcp_host[INET_ADDRSTRLEN];
  int tcp_port;
  const char *globs[MAX_GLOBS];
  int nglobs;
  long count;
  double timeout;
  int pretty, stats, verbose, fanout_json;
  const char *fanout;
  const char *tag, *json; /* fire */
  int fire;
} cli_t;

/* ---- output ---------------------------------------------------------- */

/* "%.*s%s" arguments echoing at most the first 64 bytes of a tag or glob
 * the user typed, up to its first newline (a 100 KB tag must not flood
 * the terminal), then "..." if anything was left out. */
#define SHOW_MAX 64
static int show_len(const char *s)
{
  size_t n = strcspn(s, "\r\n");
  return (int)(n > SHOW_MAX ? SHOW_MAX : n);
}
#define SHOW(s) show_len(s), (s), ((s)[show_len(s)] ? "..." : "")

/* One lock for stdout and stderr lines (handler, log hook, main). */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_log(ad_log_level_t level, const char *domain,
                   const char *message, void *user)
{
  const char *name = level <= AD_LOG_ERROR     ? "ERROR"
                     : level == AD_LOG_WARNING ? "WARNING"
                     : level == AD_LOG_INFO    ? "INFO"
                                               : "DEBUG";
  pthread_mutex_lock(&out_lock);
  fprintf(stderr, "%s: %s %s: %s\n", PROG, name, domain, message);
  pthread_mutex_unlock(&out_lock);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&out_lock);
  fprintf(stderr, "%s: ", PROG);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  pthread_mutex_unlock(&out_lock);
  va_end(ap);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", PROG);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n(try '%s --help')\n", PROG);
  va_end(ap);
  return EX_USAGE;
}

/* ---- printing events (worker thread) ------------------------------------- */

typedef struct {
  ad_bus_t *bus;
  const cli_t *cli;
  long printed;
  int write_errno; /* stdout failed: stop, exit 1 */
} printer_t;

typedef struct {
  printer_t *pr;
  int idx; /* which -m glob this route is */
} route_t;

static int on_event(ad_event_t *ev, void *user)
{
  route_t *r = user;
  printer_t *pr = r->pr;
  const cli_t *cli = pr->cli;
  const char *tag = ad_event_tag(ev);
  /* An event matching several globs reaches each route: print it once,
   * from the first route it matches. */
  for (int j = 0; j < r->idx; j++)
    if (fnmatch(cli->globs[j], tag, 0) == 0)
      return 0;
  ad_error_t err;
  char *text = ad_event_to_json_text(ev, cli->pretty ? 2 : 0, &err);
  if (!text) {
    say("%s: event data not printed: %s", tag, err.message);
    return -1;
  }
  int stop = 0;
  pthread_mutex_lock(&out_lock);
  if ((cli->count == 0 || pr->printed < cli->count) && !pr->write_errno) {
    errno = 0;
    if (fputs(text, stdout) < 0 || fputc('\n', stdout) < 0 ||
        fflush(stdout) != 0) {
      pr->write_errno = errno ? errno : EIO;
      stop = 1;
    } else if (++pr->printed == cli->count) {
      stop = 1;
    }
  }
  pthread_mutex_unlock(&out_lock);
  free(text);
  if (stop)
    ad_bus_stop(pr->bus);
  return 0;
}

/* ---- signals and timeout (helper thread) --------------------------------- */

enum { WHY_NONE, WHY_DONE, WHY_SIGNAL, WHY_TIMEOUT };

typedef struct {
  ad_bus_t *bus;
  sigset_t set;
  double timeout;
  int why, signo;
} waiter_t;

static void *waiter_main(void *arg)
{
  waiter_t *w = arg;
  struct timespec now, end;
  clock_gettime(CLOCK_MONOTONIC, &end);
  end.tv_sec += (time_t)w->timeout;
  end.tv_nsec += (long)((w->timeout - floor(w->timeout)) * 1e9);
  if (end.tv_nsec >= 1000000000L)
    end.tv_sec++, end.tv_nsec -= 1000000000L;
  for (;;) {
    siginfo_t si;
    int sig;
    if (w->timeout > 0) {
      clock_gettime(CLOCK_MONOTONIC, &now);
      struct timespec left = {end.tv_sec - now.tv_sec, end.tv_nsec - now.tv_nsec};
      if (left.tv_nsec < 0)
        left.tv_sec--, left.tv_nsec += 1000000000L;
      if (left.tv_sec < 0) {
        w->why = WHY_TIMEOUT;
        break;
      }
      sig = sigtimedwait(&w->set, &si, &left);
    } else {
      sig = sigwaitinfo(&w->set, &si);
    }
    if (sig < 0 && errno == EINTR)
      continue;
    if (sig < 0 && errno == EAGAIN) {
      w->why = WHY_TIMEOUT;
      break;
    }
    w->why = sig == SIGUSR1 ? WHY_DONE : WHY_SIGNAL;
    w->signo = sig;
    break;
  }
  ad_bus_stop(w->bus);
  return NULL;
}

/* ---- where the bus is ----------------------------------------------------- */

static int where(const cli_t *cli, ad_bus_options_t *o, master_conf_t *mc)
{
  const char *conf = cli->conf;
  if (!(cli->seen & (O_CONF | O_SOCK | O_PUB | O_PULL | O_TCP)) &&
      access(DEFAULT_CONF, R_OK) == 0)
    conf = DEFAULT_CONF;
  if (conf) {
    ad_error_t err;
    if (master_conf_load(mc, conf, &err) != 0) {
      say("master config: %s", err.message);
      return 1;
    }
    o->sock_dir = mc->sock_dir;
    o->ipc_mode_tcp = mc->ipc_mode_tcp;
    o->tcp_pub_port = mc->tcp_pub_port;
    o->tcp_pull_port = mc->tcp_pull_port;
  }
  if (cli->sock_dir)
    o->sock_dir = cli->sock_dir;
  o->pub_path = cli->pub;
  o->pull_path = cli->pull;
  if (cli->seen & O_TCP) {
    o->ipc_mode_tcp = 1;
    o->tcp_host = cli->tcp_host;
    if (cli->fire)
      o->tcp_pull_port = cli->tcp_port;
    else
      o->tcp_pub_port = cli->tcp_port;
  }
  return 0;
}

static int show_config(const ad_bus_options_t *o, const master_conf_t *mc)
{
  json_t *files = json_array();
  for (int i = 0; i < mc->nfiles; i++)
    json_array_append_new(files, json_string(mc->files[i]));
  char pub[4200], pull[4200];
  const char *host = o->tcp_host ? o->tcp_host : "127.0.0.1";
  if (o->ipc_mode_tcp) {
    snprintf(pub, sizeof(pub), "%s:%d", host, o->tcp_pub_port);
    snprintf(pull, sizeof(pull), "%s:%d", host, o->tcp_pull_port);
  } else {
    snprintf(pub, sizeof(pub), o->pub_path ? "%s" : "%s/master_event_pub.ipc",
             o->pub_path ? o->pub_path : o->sock_dir);
    snprintf(pull, sizeof(pull), o->pull_path ? "%s" : "%s/master_event_pull.ipc",
             o->pull_path ? o->pull_path : o->sock_dir);
  }
  json_t *j = json_pack("{s:o,s:s,s:s,s:i,s:i,s:s,s:s}", "files", files,
                        "sock_dir", o->sock_dir, "ipc_mode",
                        o->ipc_mode_tcp ? "tcp" : "ipc", "tcp_master_pub_port",
                        o->tcp_pub_port, "tcp_master_pull_port",
                        o->tcp_pull_port, "pub", pub, "pull", pull);
  char *s = j ? json_dumps(j, 0) : NULL;
  json_decref(j);
  if (!s)
    return 1;
  printf("%s\n", s);
  free(s);
  return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- the two commands ----------------------------------------------------- */

static void print_stats(ad_bus_t *bus)
{
  ad_bus_stats_t s = {.struct_size = sizeof s};
  ad_bus_stats(bus, &s, NULL);
  const char *framing = s.framing == AD_FRAMING_RAW      ? "raw"
                        : s.framing == AD_FRAMING_LENGTH ? "length"
                                                         : "auto";
  json_t *j = json_pack(
      "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:s}",
      "events", (json_int_t)s.events, "bytes", (json_int_t)s.bytes, "matched",
      (json_int_t)s.matched, "handled", (json_int_t)s.handled,
      "handler_errors", (json_int_t)s.handler_errors, "decode_errors",
      (json_int_t)s.decode_errors, "oversized", (json_int_t)s.oversized,
      "reconnects", (json_int_t)s.reconnects, "queue_depth",
      (json_int_t)s.queue_depth, "queue_full", (json_int_t)s.queue_full,
      "dropped", (json_int_t)s.dropped, "fanout_sent",
      (json_int_t)s.fanout_sent, "fanout_dropped", (json_int_t)s.fanout_dropped,
      "fired", (json_int_t)s.fired, "connected", s.connected, "framing",
      framing);
  char *text = j ? json_dumps(j, 0) : NULL;
  json_decref(j);
  if (text) {
    pthread_mutex_lock(&out_lock);
    fprintf(stderr, "%s\n", text);
    pthread_mutex_unlock(&out_lock);
  }
  free(text);
}

static int cmd_fire(const cli_t *cli, ad_bus_options_t *o)
{
  ad_error_t err;
  o->workers = 0;
  ad_bus_t *bus = ad_bus_new(o, &err);
  if (!bus) {
    say("fire %.*s%s: %s", SHOW(cli->tag), err.message);
    return 1;
  }
  int rc = ad_bus_fire_json(bus, cli->tag, cli->json ? cli->json : "{}", &err);
  if (rc != 0)
    say("fire %.*s%s: %s%s", SHOW(cli->tag),
        strcmp(err.domain, "json") == 0 ? "JSON_OBJECT: " : "", err.message);
  ad_bus_destroy(&bus);
  return rc == 0 ? 0 : 1;
}

static int cmd_listen(const cli_t *cli, ad_bus_options_t *o)
{
  ad_error_t err;
  static const char *all[] = {"*"};
  const char *const *globs = cli->nglobs ? cli->globs : all;
  int nglobs = cli->nglobs ? cli->nglobs : 1;
  o->workers = 1; /* one handler thread: output in bus order */
  o->fanout_endpoint = cli->fanout;
  o->fanout_format = cli->fanout_json ? AD_FANOUT_JSON : AD_FANOUT_MSGPACK;
  ad_bus_t *bus = ad_bus_new(o, &err);
  if (!bus) {
    say("%s", err.message);
    return 1;
  }
  cli_t c = *cli; /* the handler reads the globs actually used */
  c.nglobs = nglobs;
  for (int i = 0; i < nglobs; i++)
    c.globs[i] = globs[i];
  printer_t pr = {.bus = bus, .cli = &c};
  route_t routes[MAX_GLOBS];
  for (int i = 0; i < nglobs; i++) {
    routes[i] = (route_t){&pr, i};
    if (ad_bus_on(bus, globs[i], on_event, &routes[i], &err) != 0) {
      say("-m %.*s%s: %s", SHOW(globs[i]), err.message);
      ad_bus_destroy(&bus);
      return EX_USAGE;
    }
  }
  waiter_t w = {.bus = bus, .timeout = cli->timeout};
  sigemptyset(&w.set);
  sigaddset(&w.set, SIGINT);
  sigaddset(&w.set, SIGTERM);
  sigaddset(&w.set, SIGUSR1);
  pthread_t wt;
  if (pthread_create(&wt, NULL, waiter_main, &w) != 0) {
    say("cannot start the signal thread");
    ad_bus_destroy(&bus);
    return 1;
  }
  int rc = ad_bus_run(bus, &err); /* until count, signal, timeout, error */
  pthread_kill(wt, SIGUSR1);
  pthread_join(wt, NULL);
  if (cli->stats)
    print_stats(bus);
  ad_bus_destroy(&bus);
  if (rc != 0) {
    say("%s%s", strcmp(err.domain, "fanout") == 0 ? "--fanout: " : "",
        err.message);
    return 1;
  }
  if (pr.write_errno) {
    say("stdout: %s", strerror(pr.write_errno));
    return 1;
  }
  if (cli->count && pr.printed >= cli->count)
    return 0;
  if (w.why == WHY_TIMEOUT && cli->count) {
    say("timed out after %g s with %ld of %ld events", cli->timeout,
        pr.printed, cli->count);
    return 2;
  }
  return 0;
}

/* ---- arguments ------------------------------------------------------------ */

static int parse_tcp(cli_t *cli, const char *arg)
{
  const char *colon = strrchr(arg, ':');
  char host[256];
  if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof(host))
    return usage_error("--tcp '%s': expected HOST:PORT", arg);
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || port < 1 || port > 65535)
    return usage_error("--tcp '%s': port must be 1..65535", arg);
  snprintf(host, sizeof(host), "%.*s", (int)(colon - arg), arg);
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  int e = getaddrinfo(host, NULL, &hints, &ai);
  if (e != 0)
    return usage_error("--tcp '%s': cannot resolve %s to an IPv4 address: %s",
                       arg, host, gai_strerror(e));
  inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr,
            cli->tcp_host, sizeof(cli->tcp_host));
  freeaddrinfo(ai);
  cli->tcp_port = (int)port;
  return 0;
}

static int parse_args(cli_t *cli, int argc, char **argv)
{
  static const struct option longs[] = {
      {"config", required_argument, 0, 'c'},
      {"sock-dir", required_argument, 0, 's'},
      {"pub", required_argument, 0, 'P'},
      {"pull", required_argument, 0, 'L'},
      {"tcp", required_argument, 0, 'T'},
      {"match", required_argument, 0, 'm'},
      {"count", required_argument, 0, 'n'},
      {"timeout", required_argument, 0, 't'},
      {"pretty", no_argument, 0, 'p'},
      {"fanout", required_argument, 0, 'f'},
      {"fanout-format", required_argument, 0, 'F'},
      {"stats", no_argument, 0, 'S'},
      {"show-config", no_argument, 0, 'C'},
      {"verbose", no_argument, 0, 'v'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  static const unsigned bit[128] = {
      ['c'] = O_CONF, ['s'] = O_SOCK, ['P'] = O_PUB, ['L'] = O_PULL,
      ['T'] = O_TCP, ['m'] = O_MATCH, ['n'] = O_COUNT, ['t'] = O_TIMEOUT,
      ['p'] = O_PRETTY, ['f'] = O_FANOUT, ['F'] = O_FANFMT, ['S'] = O_STATS,
      ['C'] = O_SHOW};
  opterr = 0;
  int c, rc;
  char *end;
  while ((c = getopt_long(argc, argv, ":c:s:m:vh", longs, NULL)) != -1) {
    const char *opt = argv[optind - 1];
    if (c > 0 && c < 128)
      cli->seen |= bit[c];
    switch (c) {
    case 'c': cli->conf = optarg; break;
    case 's': cli->sock_dir = optarg; break;
    case 'P': cli->pub = optarg; break;
    case 'L': cli->pull = optarg; break;
    case 'T':
      if ((rc = parse_tcp(cli, optarg)) != 0)
        return rc;
      break;
    case 'm':
      if (cli->nglobs == MAX_GLOBS)
        return usage_error("-m %s: at most %d globs", optarg, MAX_GLOBS);
      if (!*optarg)
        return usage_error("-m: the glob is empty");
      cli->globs[cli->nglobs++] = optarg;
      break;
    case 'n':
      errno = 0;
      cli->count = strtol(optarg, &end, 10);
      if (errno || end == optarg || *end || cli->count < 1)
        return usage_error("--count '%s': expected a whole number >= 1", optarg);
      break;
    case 't':
      cli->timeout = strtod(optarg, &end);
      if (end == optarg || *end || !isfinite(cli->timeout) ||
          cli->timeout <= 0 || cli->timeout > 1e9)
        return usage_error("--timeout '%s': expected seconds > 0", optarg);
      break;
    case 'p': cli->pretty = 1; break;
    case 'f':
      if (!strstr(optarg, "://"))
        return usage_error("--fanout '%s': expected a ZeroMQ endpoint such "
                           "as tcp://127.0.0.1:4520", optarg);
      cli->fanout = optarg;
      break;
    case 'F':
      if (strcmp(optarg, "json") && strcmp(optarg, "msgpack"))
        return usage_error("--fanout-format '%s': expected json or msgpack",
                           optarg);
      cli->fanout_json = !strcmp(optarg, "json");
      break;
    case 'S': cli->stats = 1; break;
    case 'C': break;
    case 'v': cli->verbose = 1; break;
    case 'h': fputs(USAGE, stdout); return -1;
    case ':': return usage_error("option '%s' needs an argument", opt);
    default:
      if (optopt && optopt != '?')
        return usage_error("unknown option '-%c'", optopt);
      return usage_error("unknown option '%s'", opt);
    }
  }
  char **pos = argv + optind;
  int npos = argc - optind;
  if (npos > 0 && strcmp(pos[0], "fire") == 0) {
    cli->fire = 1;
    if (npos < 2)
      return usage_error("fire: TAG is missing");
    if (!*pos[1])
      return usage_error("fire: TAG is empty");
    cli->tag = pos[1];
    cli->json = npos > 2 ? pos[2] : NULL;
    if (npos > 3)
      return usage_error("fire: unexpected argument '%s'", pos[3]);
    unsigned listen_only = cli->seen & ~(unsigned)(O_CONF | O_SOCK | O_PULL | O_TCP);
    for (int i = 0; listen_only && longs[i].name; i++)
      if (longs[i].val < 128 && (bit[longs[i].val] & listen_only))
        return usage_error("fire: --%s is for listening, not for fire",
                           longs[i].name);
  } else if (npos > 0) {
    return usage_error("unexpected argument '%s' (the only command is fire)",
                       pos[0]);
  } else if ((cli->seen & O_PULL) && !(cli->seen & O_SHOW)) {
    return usage_error("--pull is for fire; to listen use --pub");
  }
  unsigned w = cli->seen & (O_CONF | O_SOCK | O_PUB | O_PULL | O_TCP);
  if (w & (w - 1))
    return usage_error("use only one of -c, -s, --pub, --pull, --tcp");
  return 0;
}

int main(int argc, char **argv)
{
  cli_t cli = {0};
  int rc = parse_args(&cli, argc, argv);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  /* Every thread inherits this mask: the waiter thread alone takes these. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN); /* a closed stdout is an error we report */
  ad_global_init();
  ad_log_set_handler(on_log, NULL, cli.verbose ? AD_LOG_DEBUG : AD_LOG_INFO);

  ad_bus_options_t o = {.struct_size = sizeof o};
  ad_bus_options_init(&o, NULL);
  master_conf_t mc;
  master_conf_init(&mc);
  rc = where(&cli, &o, &mc);
  if (rc == 0 && (cli.seen & O_SHOW))
    rc = show_config(&o, &mc);
  else if (rc == 0)
    rc = cli.fire ? cmd_fire(&cli, &o) : cmd_listen(&cli, &o);
  master_conf_free(&mc);
  return rc;
}
