#include "oci.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "slug.h"
#include "xalloc.h"

static const char *caps[] = {"CAP_CHOWN",        "CAP_DAC_OVERRIDE",     "CAP_FSETID",
                             "CAP_FOWNER",       "CAP_MKNOD",            "CAP_NET_RAW",
                             "CAP_SETGID",       "CAP_SETUID",           "CAP_SETFCAP",
                             "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
                             "CAP_KILL",         "CAP_AUDIT_WRITE"};

/* Syscalls a job never needs and that reach outside its container. */
static const char *denied[] = {
    "acct",          "add_key",         "bpf",           "clock_adjtime", "clock_settime",
    "delete_module", "finit_module",    "get_mempolicy", "init_module",   "ioperm",
    "iopl",          "kcmp",            "kexec_file_load", "kexec_load",  "keyctl",
    "lookup_dcookie", "mbind",          "mount",         "move_mount",    "fsopen",
    "fsmount",       "fspick",          "open_tree",     "move_pages",    "open_by_handle_at",
    "perf_event_open", "pivot_root",    "process_vm_readv", "process_vm_writev", "ptrace",
    "quotactl",      "reboot",          "request_key",   "set_mempolicy", "setns",
    "settimeofday",  "swapon",          "swapoff",       "syslog",        "umount2",
    "unshare",       "uselib",          "userfaultfd",   "ustat",         "sysfs",
    "name_to_handle_at", "nfsservctl"};

static json_t *strarr(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static int bad(struct err **err, const char *field, const char *why)
{
    return err_makex(err, EINVAL, "%s %s", field, why);
}

static int valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128 || !strcmp(id, ".") || !strcmp(id, ".."))
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

static int check_limit(json_t *res, const char *name, struct err **err)
{
    json_t *r = json_object_get(res, name);
    if (!r || json_is_null(r))
        return 0;
    if (!json_is_object(r))
        return err_makex(err, EINVAL, "resources.%s must be an object", name);
    json_t *l = json_object_get(r, "limit");
    if (l && !json_is_null(l) && (!json_is_integer(l) || json_integer_value(l) < 0))
        return err_makex(err, EINVAL, "resources.%s.limit must be a non-negative integer", name);
    return 0;
}

/* Flynn's host Job fields (flynn-api.md §11) and ours; anything else is a
 * mistake the sender should hear about. */
static const char *job_fields[] = {"id", "mountspecs", "metadata", "resources", "partition",
                                   "config", "resurrect", "profiles", "root", "stop_timeout"};
static const char *config_fields[] = {
    "args", "tty", "stdin", "env", "mounts", "volumes", "ports", "working_dir", "uid", "gid",
    "host_network", "host_pid_namespace", "disable_log", "linux_capabilities",
    "allowed_devices", "writeable_cgroups"};

static const char *root_fields[] = {"stack", "slug"};
static const char *slug_fields[] = {"url", "sha256", "size"};

static int unknown_field(json_t *o, const char **known, size_t n, const char *prefix,
                         struct err **err)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        size_t i = 0;
        while (i < n && strcmp(k, known[i]))
            i++;
        if (i == n)
            return err_makex(err, EINVAL, "unknown field '%s%s'", prefix, k);
    }
    return 0;
}

/* root.slug: {"url": http(s) URL, "sha256": 64 hex digits, "size": bytes}. */
static int check_slug(json_t *slug, struct err **err)
{
    if (!json_is_object(slug))
        return bad(err, "root.slug", "must be an object with 'url' and 'sha256'");
    if (unknown_field(slug, slug_fields, ARRAY_SIZE(slug_fields), "root.slug.", err) < 0)
        return -1;
    const char *url = json_string_value(json_object_get(slug, "url"));
    size_t n = url ? strlen(url) : 0;
    const char *host = !url                                ? NULL
                       : !strncasecmp(url, "http://", 7)  ? url + 7
                       : !strncasecmp(url, "https://", 8) ? url + 8
                                                          : NULL;
    if (!host || n > 4096 || !*host || *host == '/' ||
        n != json_string_length(json_object_get(slug, "url")))
        return bad(err, "root.slug.url", "must be an http:// or https:// URL");
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return bad(err, "root.slug.url", "must not contain spaces or control characters");
    const char *sha = json_string_value(json_object_get(slug, "sha256"));
    if (!sha || !slug_sha256_is_valid(sha))
        return bad(err, "root.slug.sha256", "is required: the archive's SHA-256 as 64 hex digits");
    json_t *size = json_object_get(slug, "size");
    if (size && !json_is_null(size) && (!json_is_integer(size) || json_integer_value(size) <= 0))
        return bad(err, "root.slug.size", "must be a positive integer (bytes)");
    return 0;
}

int oci_validate_job(json_t *spec, const char *path_id, struct err **err)
{
    if (!valid_id(path_id))
        return bad(err, "job id", "must be 1-128 characters of [A-Za-z0-9_.-]");
    if (unknown_field(spec, job_fields, ARRAY_SIZE(job_fields), "", err) < 0 ||
        (json_is_object(json_object_get(spec, "config")) &&
         unknown_field(json_object_get(spec, "config"), config_fields, ARRAY_SIZE(config_fields),
                       "config.", err) < 0))
        return -1;
    json_t *id = json_object_get(spec, "id");
    if (id && !json_is_null(id) && (!json_is_string(id) || strcmp(json_string_value(id), path_id)))
        return bad(err, "id", "must match the job ID in the path");
    json_t *ms = json_object_get(spec, "mountspecs");
    if (ms && json_is_array(ms) && json_array_size(ms))
        return bad(err, "mountspecs", "are not supported: name a stack in root.stack instead");
    json_t *root = json_object_get(spec, "root");
    if (root && !json_is_null(root)) {
        if (!json_is_object(root))
            return bad(err, "root", "must be an object");
        if (unknown_field(root, root_fields, ARRAY_SIZE(root_fields), "root.", err) < 0)
            return -1;
        json_t *st = json_object_get(root, "stack");
        if (st && !json_is_null(st) && !json_is_string(st))
            return bad(err, "root.stack", "must be a string");
        json_t *slug = json_object_get(root, "slug");
        if (slug && !json_is_null(slug) && check_slug(slug, err) < 0)
            return -1;
    }
    json_t *md = json_object_get(spec, "metadata");
    if (md && !json_is_null(md)) {
        if (!json_is_object(md))
            return bad(err, "metadata", "must be an object of strings");
        const char *k;
        json_t *v;
        json_object_foreach(md, k, v) if (!json_is_string(v)) return err_makex(
            err, EINVAL, "metadata.%s must be a string", k);
    }
    json_t *cfg = json_object_get(spec, "config");
    if (!json_is_object(cfg))
        return bad(err, "config", "is required and must be an object");
    json_t *args = json_object_get(cfg, "args");
    if (!json_is_array(args) || json_array_size(args) == 0)
        return bad(err, "config.args", "must be a non-empty array of strings");
    size_t i;
    json_t *v;
    json_array_foreach(args, i, v) if (!json_is_string(v) || (!json_string_value(v)[0] && i == 0))
        return bad(err, "config.args", "must be a non-empty array of strings");
    json_t *env = json_object_get(cfg, "env");
    if (env && !json_is_null(env)) {
        if (!json_is_object(env))
            return bad(err, "config.env", "must be an object of strings");
        const char *k;
        json_object_foreach(env, k, v)
        {
            if (!json_is_string(v))
                return err_makex(err, EINVAL, "config.env.%s must be a string", k);
            if (!*k || strchr(k, '=') || strlen(k) > 256)
                return err_makex(err, EINVAL, "config.env key '%s' is invalid", k);
            if (memchr(json_string_value(v), '\0', json_string_length(v)))
                return err_makex(err, EINVAL, "config.env.%s contains a NUL byte", k);
        }
    }
    json_t *ports = json_object_get(cfg, "ports");
    if (ports && !json_is_null(ports)) {
        if (!json_is_array(ports))
            return bad(err, "config.ports", "must be an array");
        json_array_foreach(ports, i, v)
        {
            json_t *p = json_object_get(v, "port");
            if (!json_is_object(v) || (p && (!json_is_integer(p) || json_integer_value(p) < 0 ||
                                             json_integer_value(p) > 65535)))
                return bad(err, "config.ports", "entries need a port between 0 and 65535");
        }
    }
    json_t *wd = json_object_get(cfg, "working_dir");
    if (wd && !json_is_null(wd) && (!json_is_string(wd) || json_string_value(wd)[0] != '/'))
        return bad(err, "config.working_dir", "must be an absolute path");
    static const char *flags[] = {"host_network", "tty", "stdin"};
    for (size_t k = 0; k < ARRAY_SIZE(flags); k++) {
        json_t *b = json_object_get(cfg, flags[k]);
        if (b && !json_is_null(b) && !json_is_boolean(b))
            return err_makex(err, EINVAL, "config.%s must be a boolean", flags[k]);
    }
    static const char *ids[] = {"uid", "gid"};
    for (size_t k = 0; k < 2; k++) {
        json_t *u = json_object_get(cfg, ids[k]);
        if (u && !json_is_null(u) &&
            (!json_is_integer(u) || json_integer_value(u) < 0 || json_integer_value(u) > 65535))
            return err_makex(err, EINVAL, "config.%s must be an integer 0-65535", ids[k]);
    }
    json_t *mounts = json_object_get(cfg, "mounts");
    if (mounts && !json_is_null(mounts)) {
        if (!json_is_array(mounts))
            return bad(err, "config.mounts", "must be an array");
        json_array_foreach(mounts, i, v)
        {
            const char *loc = json_string_value(json_object_get(v, "location"));
            const char *tgt = json_string_value(json_object_get(v, "target"));
            if (!loc || !tgt || loc[0] != '/' || tgt[0] != '/' || strstr(loc, "..") ||
                strstr(tgt, ".."))
                return bad(err, "config.mounts",
                           "entries need absolute 'location' and 'target' paths without '..'");
        }
    }
    json_t *res = json_object_get(spec, "resources");
    if (res && !json_is_null(res)) {
        if (!json_is_object(res))
            return bad(err, "resources", "must be an object");
        static const char *names[] = {"memory", "cpu", "max_procs", "max_fd"};
        for (size_t k = 0; k < ARRAY_SIZE(names); k++)
            if (check_limit(res, names[k], err) < 0)
                return -1;
    }
    json_t *rs = json_object_get(spec, "resurrect");
    if (rs && !json_is_null(rs) && !json_is_boolean(rs))
        return bad(err, "resurrect", "must be a boolean");
    json_t *to = json_object_get(spec, "stop_timeout");
    if (to && !json_is_null(to) &&
        (!json_is_integer(to) || json_integer_value(to) < 0 || json_integer_value(to) > 3600))
        return bad(err, "stop_timeout", "must be an integer number of seconds (0-3600)");
    return 0;
}

static long long limit_of(json_t *spec, const char *name)
{
    json_t *l = json_object_get(json_object_get(json_object_get(spec, "resources"), name), "limit");
    return json_is_integer(l) ? json_integer_value(l) : 0;
}

json_t *oci_env(json_t *spec, const char *id, const char *ip)
{
    json_t *cfg = json_object_get(spec, "config");
    json_t *env = json_object_get(cfg, "env");
    json_t *out = json_array();
    const char *k;
    json_t *v;
    int have_path = 0, have_home = 0;
    json_object_foreach(env, k, v)
    {
        if (!strcmp(k, "PATH"))
            have_path = 1;
        if (!strcmp(k, "HOME"))
            have_home = 1;
        json_array_append_new(out, json_sprintf("%s=%s", k, json_string_value(v)));
    }
    if (!have_path)
        json_array_append_new(
            out, json_string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    if (!have_home)
        json_array_append_new(out, json_string("HOME=/root"));
    json_t *ports = json_object_get(cfg, "ports");
    size_t i;
    json_t *p;
    long first = -1;
    json_array_foreach(ports, i, p)
    {
        long port = (long)json_integer_value(json_object_get(p, "port"));
        if (port == 0)
            port = 5000 + (long)i;
        if (first < 0)
            first = port;
        json_array_append_new(out, json_sprintf("PORT_%zu=%ld", i, port));
    }
    if (!json_object_get(env, "PORT"))
        json_array_append_new(out, json_sprintf("PORT=%ld", first < 0 ? 8080 : first));
    if (ip && *ip)
        json_array_append_new(out, json_sprintf("EXTERNAL_IP=%s", ip));
    json_array_append_new(out, json_sprintf("FLYNN_JOB_ID=%s", id));
    return out;
}

static json_t *mnt(const char *dest, const char *type, const char *src, const char *opts)
{
    json_t *o = json_array();
    char *copy = xstrdup(opts);
    char *save = NULL;
    for (char *s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save))
        json_array_append_new(o, json_string(s));
    free(copy);
    return json_pack("{s:s,s:s,s:s,s:o}", "destination", dest, "type", type, "source", src,
                     "options", o);
}

json_t *oci_config(const struct oci_job *j, struct err **err)
{
    json_t *cfg = json_object_get(j->spec, "config");
    json_t *args = json_deep_copy(json_object_get(cfg, "args"));
    if (j->init_path)
        json_array_insert_new(args, 0, json_string("/.flynn-init"));
    int tty = json_is_true(json_object_get(cfg, "tty"));
    const char *cwd = json_string_value(json_object_get(cfg, "working_dir"));
    json_int_t uid = json_integer_value(json_object_get(cfg, "uid"));
    json_int_t gid = json_integer_value(json_object_get(cfg, "gid"));
    long long nofile = limit_of(j->spec, "max_fd");
    if (!nofile)
        nofile = 10000;

    json_t *capset = strarr(caps, ARRAY_SIZE(caps));
    json_t *process = json_pack(
        "{s:b,s:{s:I,s:I},s:o,s:o,s:s,s:{s:O,s:O,s:O,s:O,s:O},s:b,s:[{s:s,s:I,s:I}],s:i}",
        "terminal", tty, "user", "uid", (json_int_t)uid, "gid", (json_int_t)gid, "args", args,
        "env", oci_env(j->spec, j->id, j->ip), "cwd", cwd ? cwd : "/", "capabilities",
        "bounding", capset, "effective", capset, "inheritable", capset, "permitted", capset,
        "ambient", capset, "noNewPrivileges", 1, "rlimits", "type", "RLIMIT_NOFILE", "hard",
        (json_int_t)nofile, "soft", (json_int_t)nofile, "oomScoreAdj", 0);
    json_decref(capset);
    if (uid) /* a non-root job gets no ambient privileges */
        json_object_set_new(json_object_get(process, "capabilities"), "ambient", json_array());

    json_t *mounts = json_array();
    json_array_append_new(mounts, mnt("/proc", "proc", "proc", "nosuid,noexec,nodev"));
    json_array_append_new(mounts, mnt("/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"));
    json_array_append_new(mounts, mnt("/dev/pts", "devpts", "devpts",
                                      "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620"));
    json_array_append_new(mounts, mnt("/dev/shm", "tmpfs", "shm", "nosuid,noexec,nodev,mode=1777,size=65536k"));
    json_array_append_new(mounts, mnt("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
    json_array_append_new(mounts, mnt("/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"));
    json_array_append_new(mounts, mnt("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid,noexec,nodev,relatime,ro"));
    json_array_append_new(mounts, mnt("/tmp", "tmpfs", "tmpfs", "nosuid,nodev,mode=1777"));
    json_array_append_new(mounts, mnt("/usr", "bind", "/usr", "rbind,ro,nosuid,nodev"));
    if (j->runner_dir)
        json_array_append_new(mounts, mnt("/runner", "bind", j->runner_dir, "rbind,ro,nosuid,nodev"));
    if (j->init_path)
        json_array_append_new(mounts, mnt("/.flynn-init", "bind", j->init_path, "bind,ro,nosuid,nodev"));
    static const char *files[] = {"hosts", "hostname", "resolv.conf"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        cleanup_free char *src = xasprintf("%s/%s", j->job_dir, files[i]);
        cleanup_free char *dst = xasprintf("/etc/%s", files[i]);
        json_array_append_new(mounts, mnt(dst, "bind", src, "bind,ro,nosuid,nodev"));
    }
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(cfg, "mounts"), i, m)
    {
        int rw = json_is_true(json_object_get(m, "writeable"));
        json_array_append_new(mounts, mnt(json_string_value(json_object_get(m, "location")),
                                          "bind", json_string_value(json_object_get(m, "target")),
                                          rw ? "rbind,rw,nosuid,nodev" : "rbind,ro,nosuid,nodev"));
    }

    json_t *ns = json_pack("[{s:s},{s:s},{s:s},{s:s}]", "type", "pid", "type", "ipc", "type",
                           "uts", "type", "mount");
    if (j->netns_path)
        json_array_append_new(ns, json_pack("{s:s,s:s}", "type", "network", "path", j->netns_path));

    json_t *res = json_object();
    long long mem = limit_of(j->spec, "memory");
    if (mem)
        json_object_set_new(res, "memory", json_pack("{s:I,s:I}", "limit", (json_int_t)mem,
                                                     "swap", (json_int_t)mem));
    long long cpu = limit_of(j->spec, "cpu"); /* millicores */
    if (cpu)
        json_object_set_new(res, "cpu", json_pack("{s:I,s:I,s:I}", "shares",
                                                  (json_int_t)(cpu * 1024 / 1000), "quota",
                                                  (json_int_t)(cpu * 100), "period",
                                                  (json_int_t)100000));
    long long pids = limit_of(j->spec, "max_procs");
    if (pids)
        json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t)pids));
    json_object_set_new(res, "devices", json_pack("[{s:b,s:s}]", "allow", 0, "access", "rwm"));

    json_t *syscalls = json_pack("[{s:o,s:s,s:i}]", "names", strarr(denied, ARRAY_SIZE(denied)),
                                 "action", "SCMP_ACT_ERRNO", "errnoRet", EPERM);
    json_t *linux_ = json_pack(
        "{s:o,s:o,s:s,s:{s:s,s:[s,s,s],s:o},s:[s,s,s,s,s,s,s,s,s],s:[s,s,s,s,s,s]}",
        "namespaces", ns, "resources", res, "cgroupsPath", j->cgroups_path, "seccomp",
        "defaultAction", "SCMP_ACT_ALLOW", "architectures", "SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
        "SCMP_ARCH_X32", "syscalls", syscalls, "maskedPaths", "/proc/acpi", "/proc/kcore",
        "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
        "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "readonlyPaths", "/proc/asound",
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger");
    if (!linux_) {
        err_makex(err, EINVAL, "build the runtime config of job '%s'", j->id);
        json_decref(process);
        json_decref(mounts);
        return NULL;
    }
    return json_pack("{s:s,s:o,s:{s:s,s:b},s:s,s:o,s:o}", "ociVersion", "1.0.2", "process",
                     process, "root", "path", j->rootfs, "readonly", 0, "hostname", j->hostname,
                     "mounts", mounts, "linux", linux_);
}

int oci_set_console_size(const char *path, unsigned rows, unsigned cols, struct err **err)
{
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    if (!cfg)
        return err_makex(err, EINVAL, "read '%s': %s", path, je.text);
    json_t *proc = json_object_get(cfg, "process");
    if (json_is_object(proc))
        json_object_set_new(proc, "consoleSize",
                            json_pack("{s:I,s:I}", "height", (json_int_t)rows, "width",
                                      (json_int_t)cols));
    int rc = json_dump_file(cfg, path, JSON_COMPACT);
    json_decref(cfg);
    if (rc < 0)
        return err_makex(err, EIO, "write '%s'", path);
    return 0;
}
