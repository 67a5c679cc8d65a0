/* jobcache.h - is a job return real? Check Salt's own job cache.
 *
 * Any minion can put an event on the master bus with any tag that is not
 * blacklisted (salt/daemons/masterapi.py MINION_EVENT_BLACKLIST), through
 * the `events` preload of _minion_event, and `salt/job/<jid>/ret/<id>` is
 * not blacklisted: a compromised game host could forge another minion's
 * return, or a successful one for a task. The master writes a return it
 * authenticated (AESFuncs._return) to its job cache right after firing the
 * event (salt/utils/job.py store_job; local_cache: <cachedir>/jobs/
 * <sha256(jid)[:2]>/<sha256(jid)[2:]>/<minion>/return.p, msgpack of
 * {return, retcode, success}); a forged event never gets there. Task
 * decisions count only returns found there. */
#ifndef AD_JOBCACHE_H
#define AD_JOBCACHE_H

#include <jansson.h>
#include <stdint.h>

/* 1 and *retcode when <job_dir> holds minion's return of jid; 0 when not
 * (yet); -1 when the file is there but unreadable. hash_type: "sha256"
 * (Salt's default) or "md5"... as the master's hash_type. */
int ad__jobcache_return(const char *job_dir, const char *hash_type, const char *jid,
                        const char *minion, int64_t *retcode);

/* 1 and *minions (a new JSON array of strings) when <job_dir> holds the
 * minions the master targeted with jid (`.minions.p`, written by the
 * master's local_cache save_minions when it publishes the job, before any
 * minion runs it); 0 when not there; -1 when unreadable or not a list of
 * strings. The master's own record: what salt/job/<jid>/new says, for an
 * engine that missed that event (dead or reconnecting when it went by). */
int ad__jobcache_minions(const char *job_dir, const char *hash_type, const char *jid,
                         json_t **minions);

#endif
