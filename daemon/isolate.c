// SPDX-License-Identifier: MIT
#include "daemon/isolate.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "daemon/log.h"

int isolate_drop(const char *user, const char *group)
{
        struct passwd *pw;
        gid_t gid;

        if (user && user[0]) {
                pw = getpwnam(user);
                if (!pw)
                        return log_err_errno(-ENOENT, "user '%s' does not exist", user);
                gid = pw->pw_gid;
                if (group && group[0]) {
                        struct group *gr = getgrnam(group);
                        if (!gr)
                                return log_err_errno(-ENOENT, "group '%s' does not exist", group);
                        gid = gr->gr_gid;
                }
                if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0)
                        return log_err_errno(-errno, "cannot change group to %u", (unsigned)gid);
                if (setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
                        return log_err_errno(-errno, "cannot change user to %s", user);
                log_info("running as user %s (uid %u, gid %u), no capabilities", user, (unsigned)pw->pw_uid,
                         (unsigned)gid);
        }
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return log_err_errno(-errno, "cannot set no_new_privs");
        (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* guest memory stays out of core dumps */
        return 0;
}
