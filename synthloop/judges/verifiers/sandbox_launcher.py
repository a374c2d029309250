"""The sandbox's launcher: builds the namespaces and limits, then execs the untrusted program.

Run by `sandbox.py` as `python -I -S sandbox_launcher.py <config fd> <status fd>`: a fresh, small
interpreter (standard library only, no site-packages, no synthloop import), so nothing of the caller's
threads or memory is forked. Why this is hand-written and not bubblewrap: see `sandbox.py`.

Four processes (the pids are host pids):
    L  this script: clears supplementary groups, forks C, writes C's uid/gid maps (only a process in
       the parent user namespace may map C's user to another outer uid), waits for C, exits like C.
    C  unshare(user, mount, pid, net, ipc, uts, cgroup namespaces); after L has mapped it, forks D,
       reports D's pid on the status pipe, waits for D, exits like the program (or like D if D was killed).
    D  PID 1 of the new PID namespace: builds a new root (a tmpfs with read-only binds of the Python
       install, a few device nodes, a fresh /proc, a size-limited /tmp), pivots into it, becomes the
       unprivileged user, sets the rlimits, forks E, then reaps orphans until E exits and passes E's
       status to C. When D exits (or is killed) the kernel kills every other process of the namespace.
    E  the program: its own session, `python -I /sandbox/main.py` in /tmp, no capabilities.

The status pipe carries `pid <D>` and, if a step fails, `error <what failed>`; it is close-on-exec, so
its EOF tells the caller that the program is running. Config (a marshalled dict, from the config fd):
    mode "namespaces" | "none", python, code, binds (host paths to show read-only), env,
    limits {as, cpu, fsize, nofile, nproc}, tmp_mb, workdir (mode "none" only).
"""

# Start-up time is paid on every run: marshal, not json (which imports re); the C module behind `signal`
# (which imports enum); try/except, not contextlib (which imports collections).
import _signal as signal
import ctypes
import errno
import marshal
import os
import resource
import struct
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
              | CLONE_NEWCGROUP)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 18, 1 << 21, 1 << 24
ST_NOEXEC, ST_NOATIME, ST_NODIRATIME, ST_RELATIME = 8, 1024, 2048, 4096
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
PR_SET_SECCOMP, SECCOMP_MODE_FILTER, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 22, 2, 0x7FFF0000, 0x00050000
# audit arch, then: memfd_create, memfd_secret, shmget, msgget (memory that no process's resident set
# shows, so the memory watchdog would not see it; POSIX shm lives in the size-limited /tmp), bpf,
# userfaultfd, perf_event_open, io_uring_setup (large kernel surfaces that nothing here needs)
SECCOMP_DENY = {"x86_64": (0xC000003E, (319, 447, 29, 68, 321, 323, 298, 425)),
                "aarch64": (0xC00000B7, (279, 447, 194, 186, 280, 282, 241, 425))}

INNER_ID = 1000  # the program's uid/gid inside the namespace (mapped to `nobody`, or to the caller when not root)
NOBODY = 65534
DEVICES = ("null", "zero", "full", "random", "urandom")
STAGING = ("/tmp", "/mnt", "/var/tmp")  # any existing directory can hold the new root while it is built

libc = ctypes.CDLL(None, use_errno=True)  # the interpreter links libc (find_library would spawn ldconfig)
libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)


class Failed(Exception):
    """A setup step failed; the message names it."""


def check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise Failed(f"{what}: {os.strerror(err)}")


def _bytes(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    result = libc.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data))
    check(result, f"mount {source or ''} on {target}")


def prctl(option: int, arg: int) -> None:
    check(libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def report(status_fd: int, message: str) -> None:
    try:  # noqa: SIM105
        os.write(status_fd, f"error {' '.join(message.split())[:500]}\n".encode())
    except OSError:
        pass


def exit_like(status: int) -> None:
    """Exit the way the waited-for child did (same code, or death by the same signal)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig != signal.SIGKILL:  # which cannot be (and need not be) reset
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def set_limits(limits: dict) -> None:
    for name, value in (("AS", limits["as"]), ("CPU", limits["cpu"]), ("FSIZE", limits["fsize"]),
                        ("NOFILE", limits["nofile"]), ("NPROC", limits["nproc"]), ("CORE", 0)):
        if value is not None:
            resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (value, value))


def run_unisolated(cfg: dict, status_fd: int) -> None:
    """mode "none": only rlimits, its own session (set by the caller) and a temporary working directory."""
    os.write(status_fd, f"pid {os.getpid()}\n".encode())
    script = os.path.join(cfg["workdir"], "main.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(cfg["code"])
    os.chdir(cfg["workdir"])
    set_limits(cfg["limits"])
    os.execve(cfg["python"], [cfg["python"], "-I", script], cfg["env"])


def write_maps(pid: int) -> None:
    """Map the sandbox's one user and group: to `nobody` when we are root, else to ourselves."""
    if os.geteuid() == 0:
        uid, gid = NOBODY, NOBODY
    else:  # an unprivileged user may only map itself, and only with setgroups denied
        uid, gid = os.geteuid(), os.getegid()
        with open(f"/proc/{pid}/setgroups", "w") as handle:
            handle.write("deny")
    for name, outer in (("gid_map", gid), ("uid_map", uid)):
        with open(f"/proc/{pid}/{name}", "w") as handle:
            handle.write(f"{INNER_ID} {outer} 1\n")


def run_isolated(cfg: dict, status_fd: int) -> None:
    machine = os.uname().machine
    if machine not in SYS_PIVOT_ROOT or machine not in SECCOMP_DENY:
        raise Failed(f"no syscall table for {machine} (x86_64 and aarch64 are supported)")
    # RLIMIT_NPROC counts the processes of the sandbox's uid in its user namespace: the program's, its
    # init's (D), and C's too when C has that uid (when we are not root, C's outer uid is ours)
    cfg["limits"]["nproc"] += 1 if os.geteuid() == 0 else 2
    if os.geteuid() == 0:  # root's supplementary groups would otherwise follow the program
        try:  # noqa: SIM105
            os.setgroups([])
        except PermissionError:  # denied inside a user namespace: nothing to drop then
            pass
    to_parent_r, to_parent_w = os.pipe()
    to_child_r, to_child_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # C
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.close(to_parent_r)
        os.close(to_child_w)
        try:
            check(libc.unshare(NAMESPACES), "unshare(user, mount, pid, net, ipc, uts, cgroup namespaces)")
            os.write(to_parent_w, b"1")
            if os.read(to_child_r, 1) != b"1":
                raise Failed("the launcher did not map the sandbox user")
            exit_r, exit_w = os.pipe()  # D sends the program's wait status through it
            child = os.fork()
            if child == 0:  # D
                try:
                    os.close(exit_r)
                    build_root(cfg)
                    act_as_init(cfg, status_fd, exit_w)
                except BaseException as exc:  # noqa: BLE001 - anything that stops the setup is reported
                    report(status_fd, str(exc) if isinstance(exc, Failed) else f"{type(exc).__name__}: {exc}")
                os._exit(127)
            os.close(exit_w)
            os.write(status_fd, f"pid {child}\n".encode())
            os.close(status_fd)
            _, status = os.waitpid(child, 0)
            program = os.read(exit_r, 64)  # empty when D itself was killed (timeout, memory): exit like D
            exit_like(int(program) if program and os.WIFEXITED(status) else status)
        except BaseException as exc:  # noqa: BLE001
            report(status_fd, str(exc) if isinstance(exc, Failed) else f"{type(exc).__name__}: {exc}")
        os._exit(127)
    os.close(to_parent_w)
    os.close(to_child_r)
    if os.read(to_parent_r, 1) == b"1":
        try:
            write_maps(pid)
            os.write(to_child_w, b"1")
        except OSError as exc:
            report(status_fd, f"writing the uid/gid map: {exc.strerror}")
            os.kill(pid, signal.SIGKILL)
    os.close(status_fd)
    exit_like(os.waitpid(pid, 0)[1])


def bind_readonly(fd: int, target: str) -> None:
    mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
    # a remount may add restrictions but must keep the flags the kernel locked when the mounts were
    # copied into this less privileged namespace (noexec, the atime mode), as bubblewrap does
    have = os.statvfs(target).f_flag
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
    flags |= MS_NOEXEC if have & ST_NOEXEC else 0
    flags |= MS_NODIRATIME if have & ST_NODIRATIME else 0
    flags |= MS_NOATIME if have & ST_NOATIME else MS_RELATIME if have & ST_RELATIME else MS_STRICTATIME
    mount(None, target, None, flags)


def write_file(path: str, text: str, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def build_root(cfg: dict) -> None:
    """D, PID 1 of the new namespaces: builds the new root and pivots into it, as the sandbox user."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.umask(0o022)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Open what will be shown before anything is mounted over it, and while still the launcher's
    # user: the sandbox user may not be able to walk to it (/root is 0700).
    sources = {path: os.open(path, os.O_PATH) for path in cfg["binds"] if os.path.exists(path)}
    devices = {name: os.open(f"/dev/{name}", os.O_PATH) for name in DEVICES}
    ld_cache = os.open("/etc/ld.so.cache", os.O_PATH) if os.path.exists("/etc/ld.so.cache") else None
    os.setresgid(INNER_ID, INNER_ID, INNER_ID)
    os.setresuid(INNER_ID, INNER_ID, INNER_ID)  # files created below need a uid mapped in this namespace
    # (the capabilities held in the new user namespace stay until exec; they give nothing outside it)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the uid change cleared it
    new = next(path for path in STAGING if os.path.isdir(path))
    mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,nr_inodes=4096,mode=0755")
    # the program's /tmp first, so that a Python install under /tmp is bound on top of it, not hidden
    os.makedirs(f"{new}/tmp")
    mount("tmpfs", f"{new}/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={cfg['tmp_mb']}m,nr_inodes=16384,mode=0700,uid={INNER_ID},gid={INNER_ID}")
    for path, fd in sources.items():
        target = new + path
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            write_file(target, "")
        bind_readonly(fd, target)
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):  # merged-/usr symlinks
        if os.path.islink(f"/{name}") and not os.path.lexists(f"{new}/{name}"):
            os.symlink(os.readlink(f"/{name}"), f"{new}/{name}")
    os.makedirs(f"{new}/dev")
    for name, fd in devices.items():
        write_file(f"{new}/dev/{name}", "")
        mount(f"/proc/self/fd/{fd}", f"{new}/dev/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("shm", "/tmp")):
        os.symlink(target, f"{new}/dev/{name}")
    os.makedirs(f"{new}/etc")
    if ld_cache is not None:
        write_file(f"{new}/etc/ld.so.cache", "")
        bind_readonly(ld_cache, f"{new}/etc/ld.so.cache")
    write_file(f"{new}/etc/passwd", f"sandbox:x:{INNER_ID}:{INNER_ID}::/tmp:/usr/sbin/nologin\n")
    write_file(f"{new}/etc/group", f"sandbox:x:{INNER_ID}:\n")
    write_file(f"{new}/etc/hostname", "sandbox\n")
    os.makedirs(f"{new}/sandbox")
    write_file(f"{new}/sandbox/main.py", cfg["code"])
    os.makedirs(f"{new}/proc")
    # a /proc of this PID namespace only; the kernel refuses it where the host's /proc is partly
    # masked (some container runtimes): then the sandbox has no /proc at all, which hides even more
    try:  # noqa: SIM105
        mount("proc", f"{new}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except Failed:
        pass
    # no nested user namespaces: each would hand the program a fresh set of capabilities (over
    # nothing of the host, but a larger kernel surface); this limit is per user namespace
    with open("/proc/sys/user/max_user_namespaces", "w") as handle:
        handle.write("0")
    os.chdir(new)
    check(libc.syscall(SYS_PIVOT_ROOT[os.uname().machine], b".", b"."), "pivot_root")
    check(libc.umount2(b".", MNT_DETACH), "detaching the old root")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    check(libc.sethostname(b"sandbox", 7), "sethostname")
    for fd in (*sources.values(), *devices.values(), *([ld_cache] if ld_cache is not None else [])):
        os.close(fd)


def deny_syscalls() -> None:
    """A seccomp filter (inherited by everything the program starts): EPERM for the few system calls
    that hold memory outside any process's resident set or open a large kernel surface; ENOSYS for any
    call through another ABI (32-bit, x32), which would otherwise go around the list."""
    arch, numbers = SECCOMP_DENY[os.uname().machine]
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    prog = [(ld_abs, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS), (ld_abs, 0, 0, 0),
            (jge, len(numbers) + 1, 0, 0x40000000)]  # x32 numbers (bit 30 set): to the EPERM return
    for i, number in enumerate(numbers):  # jump to the EPERM return below the ALLOW
        prog.append((jeq, len(numbers) - i, 0, number))
    prog += [(ret, 0, 0, SECCOMP_RET_ALLOW), (ret, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM)]
    filters = (ctypes.c_ubyte * (8 * len(prog))).from_buffer_copy(b"".join(struct.pack("HBBI", *op) for op in prog))
    fprog = struct.pack("HxxxxxxP", len(prog), ctypes.addressof(filters))
    buffer = ctypes.create_string_buffer(fprog)
    check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(buffer), 0, 0), "seccomp")


def act_as_init(cfg: dict, status_fd: int, exit_w: int) -> None:
    """D runs the program as its child and reaps every orphan until the program exits; then D exits and
    the kernel kills whatever is left in the namespace. (The program as PID 1 itself would ignore its
    own SIGTERM/SIGABRT and collect zombies: an init keeps ordinary process semantics.)"""
    set_limits(cfg["limits"])
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    # The program (same uid) cannot ptrace its init or read its /proc files: init holds capabilities in
    # this user namespace and the program none, so the kernel asks for CAP_SYS_PTRACE, which it lacks.
    program = os.fork()
    if program == 0:
        os.setsid()  # kill(0, ...) then reaches only the program's own group
        os.chdir("/tmp")
        deny_syscalls()
        # exec as a non-root user: the kernel clears every capability (CapEff, CapPrm = 0)
        os.execve(cfg["python"], [cfg["python"], "-I", "/sandbox/main.py"], cfg["env"])
    os.close(status_fd)  # the program's copy closes at its exec: EOF means "running"
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as init, ignore every signal sent from inside
    while True:
        pid, status = os.wait()
        if pid == program:
            os.write(exit_w, str(status).encode())
            os._exit(0)


def main() -> None:
    config_fd, status_fd = int(sys.argv[1]), int(sys.argv[2])
    with os.fdopen(config_fd, "rb") as handle:
        cfg = marshal.loads(handle.read())
    os.set_inheritable(status_fd, False)  # closed by the final exec: its EOF means "running"
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the launcher may re-raise SIGXCPU: no core file
    # die with the caller (safe: the thread that started us waits in run_python until we exit); C and
    # D do the same, and E dies with D, its PID namespace's init
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(127)
    try:
        if cfg["mode"] == "none":
            run_unisolated(cfg, status_fd)
        else:
            run_isolated(cfg, status_fd)
    except OSError as exc:
        report(status_fd, f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
    except Failed as exc:
        report(status_fd, str(exc))
    os._exit(127)


if __name__ == "__main__":
    main()
