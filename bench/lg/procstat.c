/*
 * procstat.c - what the benchmark reads about the server process under test:
 * CPU time (utime + stime of every thread, /proc/<pid>/stat fields 14 and 15)
 * and memory (VmRSS, VmHWM from /proc/<pid>/status), and the file descriptor
 * limit the load generator itself needs for 20,000 sockets.
 *
 * RSS is user-space memory only: kernel socket buffers and structures are not
 * in it, which is exactly the "user-space bytes per connection" figure.
 */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "loadgen.h"

static long status_kb(const char *text, const char *name) {
    const char *p = strstr(text, name);
    long v = -1;
    if (p && sscanf(p + strlen(name), " %ld", &v) != 1)
        v = -1;
    return v;
}

sb_lg_procstat sb_lg_procstat_read(int pid) {
    sb_lg_procstat s = {0};
    if (pid <= 0)
        return s;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return s;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the command name may contain spaces and parentheses: fields are counted after the last ')' */
    const char *p = strrchr(buf, ')');
    unsigned long long ut, stt;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
        return s;
    s.cpu_s = (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (!f)
        return s;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    s.rss_kb = status_kb(buf, "VmRSS:");
    s.hwm_kb = status_kb(buf, "VmHWM:");
    s.ok = s.rss_kb >= 0;
    return s;
}

long sb_lg_raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}
