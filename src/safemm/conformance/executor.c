/*
 * safemm conformance executor: runs memory-map operations on the real kernel
 * inside a window of its own address space and reports what the kernel did.
 *
 * Usage: executor REGION_PAGES GUARD_PAGES MOAT_PAGES
 *
 * Built from safemm/conformance/executor.c at test time with the machine's
 * gcc (see safemm/conformance/kernel_side.py); driven over a pipe, one request
 * line in, one JSON result line out.
 *
 * Address-space shape (addresses grow to the right):
 *
 *   | moat (hole) | guard | region (REGION_PAGES) | guard | moat (hole) |
 *   ^moat_lo      ^w_lo                                   ^w_hi         ^moat_hi
 *
 * The "window" is [w_lo, w_hi): guards + region. At setup and at every reset it
 * is one PROT_NONE MAP_PRIVATE|MAP_ANONYMOUS mapping. The moats are holes of
 * MOAT_PAGES pages on each side, carved out of one kernel-placed reservation.
 *
 * Requests (all numbers unsigned decimal, except FD which may be -1):
 *   m ADDR LEN PROT FLAGS FD OFF    mmap
 *   u ADDR LEN                      munmap
 *   p ADDR LEN PROT                 mprotect
 *   r OLD OLDLEN NEWLEN FLAGS NEW   mremap
 *   a ADDR LEN ADVICE               madvise (ADVICE: the int's 32 bits, unsigned)
 *   t LEN                           ftruncate(MEMFD, (off_t)LEN)
 *   R OFF                           pread one byte of MEMFD at (off_t)OFF: the byte,
 *                                   or 256 when nothing was read (end of file)
 *   W OFF BYTE                      pwrite one byte to MEMFD at (off_t)OFF
 *   k ADDR LEN                      mlock
 *   K ADDR LEN                      munlock
 *   l ADDR                          one-byte load
 *   s ADDR BYTE                     one-byte store
 *   f                               fork: a child process that serves "c" requests
 *                                   (an existing child is ended first); value = its pid
 *   c REQUEST                       run REQUEST (any of the above but f, z, q, c) in the
 *                                   child: forwarded over a pipe, its reply forwarded back
 *   z                               reset the window to its initial state (ends the child)
 *   q                               exit (ends the child)
 * Every reply is one line:
 *   {"kind":"ok","value":N,"maps":[...]}          syscall returned N / load read N
 *   {"kind":"errno","value":E,"maps":[...]}       syscall failed with errno E
 *   {"kind":"signal","value":S,"name":"SIGSEGV","maps":[...]}
 *   {"kind":"unsafe","reason":"..."}              refused by this program, not run
 *   {"kind":"fatal","reason":"..."}               followed by exit(70)
 * MEMFD (descriptor 1000) is a memfd named "safemm", made at setup and
 * truncated to 0 at every reset; mmap requests may name it (and only it).
 * "maps" holds every /proc/self/maps line that intersects [moat_lo, moat_hi),
 * verbatim; while a child exists, "child_maps" holds the same lines of the
 * child's /proc/PID/maps (the parent reads them: the child is blocked on its
 * request pipe, so its layout is the one its last request left). The first line written, before any request, is
 *   {"kind":"hello","page_size":P,"moat_lo":A,"window":B,"window_end":C,
 *    "moat_hi":D,"pid":N,"maps":[...]}.
 *
 * WHY NOTHING ELSE CAN LAND IN THE WINDOW OR THE MOATS (non-disturbance):
 *
 * A mapping appears in a process only when a task of that process asks for one
 * (mmap, mremap, brk, shmat, io_setup, ...), when the stack VMA grows, or in a
 * few kernel-initiated cases (exec, the uprobes XOL page). This process has one
 * thread, and after setup() it only ever makes these system calls:
 * read(0), write(1), write(2), openat/read/close of /proc/self/maps (and of
 * its child's maps), the operations it was asked for, pipe/fork/dup2/close/
 * wait4 for the child (see THE CHILD below), rt_sigreturn, and exit. In
 * particular:
 *  - Nothing allocates after setup: no malloc, no stdio (all output goes through
 *    write(2) from static buffers; numbers are formatted by hand), no locale,
 *    no dlopen. The binary is linked with -z now, so the dynamic linker never
 *    runs again after startup (no lazy PLT binding). The heap (brk) never moves.
 *  - The memfd is created at setup; reads, writes and truncation of it change no
 *    mapping (its pages live in the page cache, not in this address space).
 *  - Every mmap it executes has MAP_FIXED or MAP_FIXED_NOREPLACE and a range
 *    inside the window (or arguments the kernel must refuse), checked by
 *    call_is_confined() below before the call is made. A successful
 *    MAP_FIXED_NOREPLACE that came back at another address (kernels < 4.17
 *    treat the flag as a hint) is unmapped at once and reported as fatal.
 *  - Every madvise has an advice of a small allowed set (DONTNEED, DONTFORK,
 *    DOFORK, WIPEONFORK, KEEPONFORK) and a range inside the window, unless the
 *    kernel must refuse it before walking (invalid advice, unaligned start,
 *    wrapping or overflowing length) or it walks nothing (zero length, start
 *    beyond TASK_SIZE): madvise walks across holes, so a huge length would
 *    reach this program's own mappings. mlock and munlock round the start
 *    down and take the page-rounded range, which must be inside the window
 *    too unless it is empty, wraps or starts far (nothing is locked then).
 *  - Every mremap is either in place (flags 0) or MREMAP_MAYMOVE|MREMAP_FIXED
 *    (optionally |MREMAP_DONTUNMAP) to a target inside the window. A plain
 *    MREMAP_MAYMOVE, which lets the kernel choose the address, is refused.
 *  - So holes that munmap/mremap make in the window or the moats can only be
 *    filled by a later operation of the sequence itself, at a fixed address.
 *  - Stack growth: the [stack] VMA only grows down from its own start when
 *    this process touches the pages just below it. Loads and stores are only
 *    made inside the window, which the kernel placed in the mmap area, at least
 *    the stack rlimit (>= 128 MiB) plus the stack guard gap below the stack.
 *    Signal frames go on a static alternate stack in .bss.
 *  - vdso/vvar are placed at exec and never move. The uprobes XOL page can be
 *    added by the kernel if someone sets a uprobe on this program; it and any
 *    other foreign mapping (e.g. one injected with ptrace) is *detected*:
 *    the Python side rejects every step whose maps show, inside the moats or
 *    the window, a line that is not anonymous or "/dev/zero (deleted)", or one
 *    that crosses the window's edge.
 *  - Operations never reach outside the window: the moats are holes, so a
 *    mprotect with a huge length stops (-ENOMEM) at the first moat page and no
 *    merge can join a window VMA with a foreign neighbour. A huge mprotect is
 *    only executed while both moats are verified empty (moat_clear).
 *
 * THE CHILD (fork): "f" forks this process. The child inherits the window (as
 * fork copies it: VM_DONTCOPY ranges missing, VM_WIPEONFORK ranges empty), the
 * memfd (the same open file), the moats (still holes), the signal handlers and
 * the alternate stack, and the same static buffers. It swaps its stdin/stdout
 * for two pipes to the parent and serves requests exactly as the parent does,
 * under the same confinement rule (its window is at the same addresses), except
 * that its replies carry no maps: it only rescans its own maps to keep its
 * moat_clear up to date. fork() makes no mapping in the parent and pipe() none
 * in either process, so the argument above holds for both. The child ends when
 * its request pipe is closed (at the next "f", "z" or "q", or when the parent
 * dies), and the parent reaps it with waitpid.
 *
 * Loads and stores: a SIGSEGV or SIGBUS raised by the access is caught on the
 * alternate stack and turned into a "signal" reply with siglongjmp. A fault at
 * any other place (a bug in this program) exits with status 70.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The Python side encodes the asm-generic values (x86-64, arm64, riscv64...). */
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#define MADV_KEEPONFORK 19
#endif
_Static_assert(sizeof(long) == 8 && sizeof(void *) == 8, "64-bit only");
_Static_assert(PROT_READ == 1 && PROT_WRITE == 2 && PROT_EXEC == 4, "prot ABI");
_Static_assert(MAP_SHARED == 1 && MAP_PRIVATE == 2 && MAP_SHARED_VALIDATE == 3, "type ABI");
_Static_assert(MAP_FIXED == 0x10 && MAP_ANONYMOUS == 0x20, "map ABI");
_Static_assert(MAP_FIXED_NOREPLACE == 0x100000, "map ABI");
_Static_assert(MREMAP_MAYMOVE == 1 && MREMAP_FIXED == 2 && MREMAP_DONTUNMAP == 4, "mremap ABI");
_Static_assert(MAP_LOCKED == 0x2000 && MAP_NORESERVE == 0x4000, "map ABI");
_Static_assert(MADV_DONTNEED == 4 && MADV_DONTFORK == 10 && MADV_DOFORK == 11, "madvise ABI");
_Static_assert(MADV_WIPEONFORK == 18 && MADV_KEEPONFORK == 19, "madvise ABI");

typedef uint64_t u64;

/* The suite's memfd (ops.MEMFD on the Python side). */
#define MEMFD 1000

/* Addresses and lengths at or above FAR are beyond TASK_SIZE on every 64-bit
 * Linux architecture (x86-64 5-level paging tops out at 2^57), so the kernel
 * must refuse any call that would map, unmap or protect there. */
#define FAR (1ULL << 62)

static u64 page_size;
static u64 moat_lo, w_lo, w_hi, moat_hi;
static int moat_clear;

static char in_buf[4096];
static size_t in_len, in_consumed;
static char child_buf[1 << 12];
static size_t child_len, child_consumed;

/* The parent's view of its child (child_pid 0: none); is_child in the child. */
static long child_pid;
static int to_child = -1, from_child = -1;
static int is_child;
static char child_maps_path[64];
static char maps_buf[1 << 16];
static char out_buf[1 << 17];
static size_t out_len;
static char alt_stack[1 << 16];

static sigjmp_buf fault_env;
static volatile sig_atomic_t fault_armed;
static volatile u64 fault_expected;

/* ---- output, no allocation ------------------------------------------------ */

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(71);
		}
		buf += n;
		len -= (size_t)n;
	}
}

static void die(const char *why)
{
	static const char prefix[] = "safemm executor: ";
	write_all(2, prefix, sizeof prefix - 1);
	write_all(2, why, strlen(why));
	write_all(2, "\n", 1);
	_exit(70);
}

static void out_char(char c)
{
	if (out_len + 1 >= sizeof out_buf)
		die("output buffer overflow");
	out_buf[out_len++] = c;
}

static void out_str(const char *s)
{
	while (*s)
		out_char(*s++);
}

static void out_u64(u64 v)
{
	char digits[24];
	int n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		out_char(digits[--n]);
}

/* A JSON string: escape quotes, backslashes and control bytes. */
static void out_json(const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	out_char('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			out_char('\\');
			out_char((char)c);
		} else if (c < 0x20 || c >= 0x7f) {
			out_str("\\u00");
			out_char(hex[c >> 4]);
			out_char(hex[c & 15]);
		} else {
			out_char((char)c);
		}
	}
	out_char('"');
}

static void out_flush(void)
{
	out_char('\n');
	write_all(1, out_buf, out_len);
	out_len = 0;
}

/* ---- /proc/self/maps -------------------------------------------------------- */

static int parse_hex(const char **p, u64 *v)
{
	u64 r = 0;
	int n = 0;
	for (;; (*p)++, n++) {
		char c = **p;
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			break;
		r = r << 4 | d;
	}
	*v = r;
	return n > 0;
}

/* Read a maps file with open/read into the static buffer; its length. */
static size_t read_maps(const char *path)
{
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("cannot open a maps file");
	for (;;) {
		ssize_t n = read(fd, maps_buf + len, sizeof maps_buf - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("cannot read a maps file");
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof maps_buf)
			die("a maps file does not fit the static buffer");
	}
	close(fd);
	return len;
}

/* Scan the maps file at PATH; append the lines that intersect [moat_lo, moat_hi)
 * to the reply as "KEY":[...] (nothing if KEY is NULL). Returns 1 if none of them
 * reaches outside the window (the moats are empty). */
static int scan_maps(const char *path, const char *key)
{
	size_t len = read_maps(path);
	int first = 1, clear = 1;
	if (key) {
		out_str(",\"");
		out_str(key);
		out_str("\":[");
	}
	for (size_t i = 0; i < len;) {
		const char *line = maps_buf + i;
		const char *nl = memchr(line, '\n', len - i);
		size_t line_len = nl ? (size_t)(nl - line) : len - i;
		const char *p = line;
		u64 start, end;
		i += line_len + 1;
		if (!parse_hex(&p, &start) || *p++ != '-' || !parse_hex(&p, &end))
			die("unparsable maps line");
		if (end <= moat_lo || start >= moat_hi)
			continue;
		if (start < w_lo || end > w_hi)
			clear = 0;
		if (!key)
			continue;
		if (!first)
			out_char(',');
		first = 0;
		out_json(line, line_len);
	}
	if (key)
		out_char(']');
	return clear;
}

/* The maps part of a reply: this process's lines (and moat_clear), then the
 * child's while there is one. A child only refreshes its own moat_clear. */
static void out_maps(void)
{
	if (is_child) {
		moat_clear = scan_maps("/proc/self/maps", NULL);
		return;
	}
	moat_clear = scan_maps("/proc/self/maps", "maps");
	if (child_pid)
		scan_maps(child_maps_path, "child_maps");
}

/* ---- the confinement rule --------------------------------------------------- */

static int aligned(u64 a)
{
	return (a & (page_size - 1)) == 0;
}

static u64 page_align(u64 n) /* wraps to a small value, like PAGE_ALIGN */
{
	return (n + page_size - 1) & ~(page_size - 1);
}

/* Every address argument is inside the window (its end included) or far. */
static int addr_ok(u64 a)
{
	return (a >= w_lo && a <= w_hi) || a >= FAR;
}

/* Every length argument is at most the window's size, or huge. */
static int len_ok(u64 n)
{
	return n <= w_hi - w_lo || n >= FAR;
}

/*
 * A range [a, a + n) that the call may map, unmap or move: acceptable if the
 * kernel must refuse the call because of it (address unaligned or beyond
 * TASK_SIZE, length zero, or length beyond TASK_SIZE), or if the page-rounded
 * range lies inside the window.
 */
static int range_ok(u64 a, u64 n)
{
	if (a >= FAR || !aligned(a) || n == 0 || n >= FAR)
		return 1;
	return a >= w_lo && a <= w_hi && page_align(n) <= w_hi - a;
}

static const char *mmap_unsafe(u64 addr, u64 len, u64 prot, u64 flags, long fd)
{
	const u64 known = MAP_SHARED_VALIDATE | MAP_FIXED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE |
			  MAP_LOCKED | MAP_NORESERVE;
	if (!(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)))
		return "mmap without MAP_FIXED or MAP_FIXED_NOREPLACE";
	if (flags & ~known)
		return "mmap flag outside the allowed set";
	if (prot > 0xff)
		return "mmap prot outside 0..0xff";
	if (fd != -1 && fd != MEMFD)
		return "mmap with a file descriptor other than the memfd";
	if (!addr_ok(addr) || !len_ok(len) || !range_ok(addr, len))
		return "mmap range not confined to the window";
	return NULL;
}

static const char *munmap_unsafe(u64 addr, u64 len)
{
	if (!addr_ok(addr) || !len_ok(len) || !range_ok(addr, len))
		return "munmap range not confined to the window";
	return NULL;
}

static const char *mprotect_unsafe(u64 addr, u64 len)
{
	if (!addr_ok(addr) || !len_ok(len))
		return "mprotect range not confined to the window";
	/* A huge length walks VMAs from addr until the first hole: a moat page. */
	if (len >= FAR && addr < FAR && !moat_clear)
		return "huge mprotect while a moat is not empty";
	if (len < FAR && !range_ok(addr, len))
		return "mprotect range not confined to the window";
	return NULL;
}

static const char *mremap_unsafe(u64 old, u64 old_len, u64 new_len, u64 flags, u64 new_addr)
{
	const u64 all = MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP;
	if (flags & ~all)
		return NULL; /* unknown flag: -EINVAL before anything else */
	if ((flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) && !(flags & MREMAP_MAYMOVE))
		return NULL; /* -EINVAL */
	if ((flags & MREMAP_MAYMOVE) && !(flags & MREMAP_FIXED))
		return "mremap may move to an address of the kernel's choice";
	if (!addr_ok(old) || !len_ok(old_len) || !len_ok(new_len))
		return "mremap range not confined to the window";
	if (!range_ok(old, old_len > new_len ? old_len : new_len))
		return "mremap source range not confined to the window";
	if ((flags & MREMAP_FIXED) && (!addr_ok(new_addr) || !range_ok(new_addr, new_len)))
		return "mremap target range not confined to the window";
	return NULL;
}

/* Advice no Linux accepts: do_madvise returns -EINVAL before anything else. */
static int bad_advice(int advice)
{
	return advice == 999 || advice == 0x7fffffff || advice == -1;
}

static int allowed_advice(int advice)
{
	return advice == MADV_DONTNEED || advice == MADV_DONTFORK || advice == MADV_DOFORK ||
	       advice == MADV_WIPEONFORK || advice == MADV_KEEPONFORK;
}

static const char *madvise_unsafe(u64 addr, u64 len, int advice)
{
	u64 rounded = page_align(len);
	if (bad_advice(advice))
		return NULL; /* -EINVAL */
	if (!allowed_advice(advice))
		return "madvise advice outside the allowed set";
	if (!aligned(addr) || (len && !rounded) || addr + rounded < addr)
		return NULL; /* -EINVAL */
	if (len == 0 || addr >= FAR)
		return NULL; /* nothing walked / no VMA beyond TASK_SIZE */
	if (addr < w_lo || addr + rounded > w_hi)
		return "madvise range not confined to the window";
	return NULL;
}

static const char *mlock_unsafe(u64 addr, u64 len)
{
	u64 off = addr & (page_size - 1);
	u64 start = addr - off;
	u64 rounded = page_align(len + off);
	if (rounded == 0 || start + rounded < start || start >= FAR)
		return NULL; /* empty, -EINVAL, or -ENOMEM before anything is locked */
	if (start < w_lo || start + rounded > w_hi)
		return "mlock range not confined to the window";
	return NULL;
}

/* ---- operations --------------------------------------------------------------- */

static void reply_unsafe(const char *why)
{
	out_str("{\"kind\":\"unsafe\",\"reason\":");
	out_json(why, strlen(why));
	out_char('}');
	out_flush();
}

static void reply_fatal(const char *why)
{
	out_str("{\"kind\":\"fatal\",\"reason\":");
	out_json(why, strlen(why));
	out_char('}');
	out_flush();
	die(why);
}

static void reply_syscall(long ret, int err)
{
	if (ret == -1 && err) {
		out_str("{\"kind\":\"errno\",\"value\":");
		out_u64((u64)err);
	} else {
		out_str("{\"kind\":\"ok\",\"value\":");
		out_u64((u64)ret);
	}
	out_maps();
	out_char('}');
	out_flush();
}

static void on_fault(int sig, siginfo_t *info, void *uctx)
{
	(void)uctx;
	if (!fault_armed || (u64)(uintptr_t)info->si_addr != fault_expected) {
		static const char msg[] = "safemm executor: fault outside a requested access\n";
		write_all(2, msg, sizeof msg - 1);
		_exit(70);
	}
	fault_armed = 0;
	siglongjmp(fault_env, sig);
}

static void do_access(u64 addr, int store, unsigned char byte)
{
	volatile unsigned char *p = (volatile unsigned char *)(uintptr_t)addr;
	int sig;

	if (addr < w_lo || addr >= w_hi) {
		reply_unsafe("access outside the window");
		return;
	}
	sig = sigsetjmp(fault_env, 1);
	if (sig == 0) {
		unsigned value = 0;
		fault_expected = addr;
		fault_armed = 1;
		if (store)
			*p = byte;
		else
			value = *p;
		fault_armed = 0;
		out_str("{\"kind\":\"ok\",\"value\":");
		out_u64(value);
	} else {
		out_str("{\"kind\":\"signal\",\"value\":");
		out_u64((u64)sig);
		out_str(",\"name\":");
		if (sig == SIGSEGV)
			out_str("\"SIGSEGV\"");
		else
			out_str("\"SIGBUS\"");
	}
	out_maps();
	out_char('}');
	out_flush();
}

static void do_reset(void)
{
	long r = syscall(SYS_mmap, w_lo, w_hi - w_lo, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1L, 0L);
	if (r == -1 || (u64)r != w_lo)
		reply_fatal("cannot reset the window");
	if (syscall(SYS_ftruncate, MEMFD, 0L) != 0)
		reply_fatal("cannot empty the memfd");
}

static void do_pread(u64 off)
{
	unsigned char byte = 0;
	long r;
	int err;

	errno = 0;
	r = syscall(SYS_pread64, MEMFD, &byte, 1UL, (long)off);
	err = errno;
	if (r == 1)
		r = byte;
	else if (r == 0)
		r = 256;
	reply_syscall(r, err);
}

static void do_pwrite(u64 off, unsigned char byte)
{
	long r;
	int err;

	errno = 0;
	r = syscall(SYS_pwrite64, MEMFD, &byte, 1UL, (long)off);
	err = errno;
	reply_syscall(r, err);
}

static void do_mmap(u64 addr, u64 len, u64 prot, u64 flags, long fd, u64 off)
{
	const char *why = mmap_unsafe(addr, len, prot, flags, fd);
	long r;
	int err;

	if (why) {
		reply_unsafe(why);
		return;
	}
	errno = 0;
	r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	err = errno;
	if (r != -1 && (u64)r != addr) {
		syscall(SYS_munmap, (u64)r, len);
		reply_fatal("MAP_FIXED_NOREPLACE was treated as a hint (kernel < 4.17)");
	}
	reply_syscall(r, err);
}

static void do_mremap(u64 old, u64 old_len, u64 new_len, u64 flags, u64 new_addr)
{
	const char *why = mremap_unsafe(old, old_len, new_len, flags, new_addr);
	long r;
	int err;

	if (why) {
		reply_unsafe(why);
		return;
	}
	errno = 0;
	r = syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
	err = errno;
	if (r != -1 && (u64)r != ((flags & MREMAP_FIXED) ? new_addr : old))
		reply_fatal("mremap returned an unexpected address");
	reply_syscall(r, err);
}

/* ---- request parsing ------------------------------------------------------------ */

static int next_u64(const char **p, u64 *v)
{
	u64 r = 0;
	int n = 0;
	while (**p == ' ')
		(*p)++;
	for (; **p >= '0' && **p <= '9'; (*p)++, n++) {
		u64 d = (u64)(**p - '0');
		if (r > (UINT64_MAX - d) / 10)
			return 0;
		r = r * 10 + d;
	}
	*v = r;
	return n > 0;
}

static int next_long(const char **p, long *v)
{
	u64 u;
	int neg = 0;
	while (**p == ' ')
		(*p)++;
	if (**p == '-') {
		neg = 1;
		(*p)++;
	}
	if (!next_u64(p, &u) || u > (u64)INT32_MAX)
		return 0;
	*v = neg ? -(long)u : (long)u;
	return 1;
}

/* Returns a pointer to the next NUL-terminated request line, or NULL at EOF. */
/* The next NUL-terminated line read from FD into BUF (of SIZE bytes, LEN of
 * them filled, the first CONSUMED of those already returned), or NULL at EOF. */
static char *read_line(int fd, char *buf, size_t size, size_t *len, size_t *consumed)
{
	if (*consumed) {
		memmove(buf, buf + *consumed, *len - *consumed);
		*len -= *consumed;
		*consumed = 0;
	}
	for (;;) {
		char *nl = memchr(buf, '\n', *len);
		if (nl) {
			*nl = '\0';
			*consumed = (size_t)(nl - buf) + 1;
			return buf;
		}
		if (*len == size)
			die("line too long");
		ssize_t n = read(fd, buf + *len, size - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		*len += (size_t)n;
	}
}

/* Returns a pointer to the next NUL-terminated request line, or NULL at EOF. */
static char *next_line(void)
{
	return read_line(0, in_buf, sizeof in_buf, &in_len, &in_consumed);
}

/* ---- the child ------------------------------------------------------------------ */

/* Close the child's request pipe (it exits at end of input) and reap it. */
static void end_child(void)
{
	int status;
	if (!child_pid)
		return;
	close(to_child);
	while (waitpid((pid_t)child_pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid failed");
	close(from_child);
	child_pid = 0;
	to_child = from_child = -1;
}

/* "f": fork a child that serves requests from a pipe. In the child this returns
 * with stdin/stdout swapped for the pipes and the input buffer emptied, so the
 * serve loop goes on reading the parent's forwarded requests. */
static void do_fork(void)
{
	int req[2], rep[2];
	long pid;
	int err;

	end_child();
	if (pipe(req) != 0 || pipe(rep) != 0)
		die("pipe failed");
	errno = 0;
	pid = fork();
	err = errno;
	if (pid == 0) {
		is_child = 1;
		if (dup2(req[0], 0) != 0 || dup2(rep[1], 1) != 1)
			die("child: dup2 failed");
		close(req[0]);
		close(req[1]);
		close(rep[0]);
		close(rep[1]);
		in_len = in_consumed = 0;
		out_len = 0;
		return;
	}
	close(req[0]);
	close(rep[1]);
	if (pid < 0) {
		close(req[1]);
		close(rep[0]);
		reply_syscall(-1, err);
		return;
	}
	child_pid = pid;
	to_child = req[1];
	from_child = rep[0];
	child_len = child_consumed = 0;
	{
		/* "/proc/" PID "/maps", formatted by hand (no stdio) */
		char digits[24];
		size_t n = 0, at = 0;
		u64 v = (u64)pid;
		do {
			digits[n++] = (char)('0' + v % 10);
			v /= 10;
		} while (v);
		memcpy(child_maps_path, "/proc/", 6);
		at = 6;
		while (n)
			child_maps_path[at++] = digits[--n];
		memcpy(child_maps_path + at, "/maps", 6);
	}
	reply_syscall(pid, 0);
}

/* "c REQUEST": send REQUEST to the child, and reply with its answer plus the maps. */
static void do_in_child(const char *request)
{
	static const char fatal[] = "{\"kind\":\"fatal\"";
	static const char unsafe[] = "{\"kind\":\"unsafe\"";
	char *reply;
	size_t len;

	if (!child_pid) {
		reply_unsafe("no child process");
		return;
	}
	if (!strchr("muprastRWkKls", request[0]) || request[0] == '\0')
		die("bad child request");
	write_all(to_child, request, strlen(request));
	write_all(to_child, "\n", 1);
	reply = read_line(from_child, child_buf, sizeof child_buf, &child_len, &child_consumed);
	if (!reply)
		reply_fatal("the child died");
	len = strlen(reply);
	if (strncmp(reply, fatal, sizeof fatal - 1) == 0) {
		out_str(reply);
		out_flush();
		die("the child gave up");
	}
	if (strncmp(reply, unsafe, sizeof unsafe - 1) == 0) {
		out_str(reply);
		out_flush();
		return;
	}
	if (len < 2 || reply[len - 1] != '}')
		die("bad reply from the child");
	reply[len - 1] = '\0';
	out_str(reply);
	out_maps();
	out_char('}');
	out_flush();
}

static void serve(void)
{
	char *line;
	while ((line = next_line()) != NULL) {
		const char *p = line + 1;
		u64 a[5] = { 0, 0, 0, 0, 0 };
		long fd = 0;
		long r;
		int err;

		switch (line[0]) {
		case 'm':
			if (!next_u64(&p, &a[0]) || !next_u64(&p, &a[1]) || !next_u64(&p, &a[2]) ||
			    !next_u64(&p, &a[3]) || !next_long(&p, &fd) || !next_u64(&p, &a[4]))
				die("bad mmap request");
			do_mmap(a[0], a[1], a[2], a[3], fd, a[4]);
			break;
		case 'u':
			if (!next_u64(&p, &a[0]) || !next_u64(&p, &a[1]))
				die("bad munmap request");
			if (munmap_unsafe(a[0], a[1])) {
				reply_unsafe(munmap_unsafe(a[0], a[1]));
				break;
			}
			errno = 0;
			r = syscall(SYS_munmap, a[0], a[1]);
			err = errno;
			reply_syscall(r, err);
			break;
		case 'p':
			if (!next_u64(&p, &a[0]) || !next_u64(&p, &a[1]) || !next_u64(&p, &a[2]))
				die("bad mprotect request");
			if (mprotect_unsafe(a[0], a[1])) {
				reply_unsafe(mprotect_unsafe(a[0], a[1]));
				break;
			}
			errno = 0;
			r = syscall(SYS_mprotect, a[0], a[1], a[2]);
			err = errno;
			reply_syscall(r, err);
			break;
		case 'r':
			if (!next_u64(&p, &a[0]) || !next_u64(&p, &a[1]) || !next_u64(&p, &a[2]) ||
			    !next_u64(&p, &a[3]) || !next_u64(&p, &a[4]))
				die("bad mremap request");
			do_mremap(a[0], a[1], a[2], a[3], a[4]);
			break;
		case 'a':
			if (!next_u64(&p, &a[0]) || !next_u64(&p, &a[1]) || !next_u64(&p, &a[2]) ||
			    a[2] > 0xffffffffULL)
				die("bad madvise request");
			if (madvise_unsafe(a[0], a[1], (int)(unsigned)a[2])) {
				reply_unsafe(madvise_unsafe(a[0], a[1], (int)(unsigned)a[2]));
				break;
			}
			errno = 0;
			r = syscall(SYS_madvise, a[0], a[1], (int)(unsigned)a[2]);
			err = errno;
			reply_syscall(r, err);
			break;
		case 'k':
		case 'K':
			if (!next_u64(&p, &a[0]) || !next_u64(&p, &a[1]))
				die("bad mlock request");
			if (mlock_unsafe(a[0], a[1])) {
				reply_unsafe(mlock_unsafe(a[0], a[1]));
				break;
			}
			errno = 0;
			r = syscall(line[0] == 'k' ? SYS_mlock : SYS_munlock, a[0], a[1]);
			err = errno;
			reply_syscall(r, err);
			break;
		case 't':
			if (!next_u64(&p, &a[0]))
				die("bad ftruncate request");
			errno = 0;
			r = syscall(SYS_ftruncate, MEMFD, (long)a[0]);
			err = errno;
			reply_syscall(r, err);
			break;
		case 'R':
			if (!next_u64(&p, &a[0]))
				die("bad pread request");
			do_pread(a[0]);
			break;
		case 'W':
			if (!next_u64(&p, &a[0]) || !next_u64(&p, &a[1]) || a[1] > 255)
				die("bad pwrite request");
			do_pwrite(a[0], (unsigned char)a[1]);
			break;
		case 'l':
			if (!next_u64(&p, &a[0]))
				die("bad load request");
			do_access(a[0], 0, 0);
			break;
		case 's':
			if (!next_u64(&p, &a[0]) || !next_u64(&p, &a[1]) || a[1] > 255)
				die("bad store request");
			do_access(a[0], 1, (unsigned char)a[1]);
			break;
		case 'f':
			if (is_child)
				die("fork requested in the child");
			do_fork();
			break;
		case 'c':
			if (is_child)
				die("child request sent to the child");
			do_in_child(p + (*p == ' '));
			break;
		case 'z':
			if (is_child)
				die("reset requested in the child");
			end_child();
			do_reset();
			out_str("{\"kind\":\"ok\",\"value\":0");
			out_maps();
			out_char('}');
			out_flush();
			break;
		case 'q':
			end_child();
			return;
		default:
			die("unknown request");
		}
	}
}

/* ---- setup --------------------------------------------------------------------- */

static u64 arg_u64(const char *s, u64 max)
{
	u64 v;
	if (!next_u64(&s, &v) || *s != '\0' || v > max)
		die("usage: executor REGION_PAGES GUARD_PAGES MOAT_PAGES");
	return v;
}

static void setup(u64 region, u64 guard, u64 moat)
{
	stack_t ss;
	struct sigaction sa;
	u64 total;
	long span, memfd;

	page_size = (u64)sysconf(_SC_PAGESIZE);

	memset(&ss, 0, sizeof ss);
	ss.ss_sp = alt_stack;
	ss.ss_size = sizeof alt_stack;
	if (sigaltstack(&ss, NULL) != 0)
		die("sigaltstack failed");
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL) != 0 || sigaction(SIGBUS, &sa, NULL) != 0)
		die("sigaction failed");
	/* A dead child's pipe is then EPIPE, not a signal that kills the parent. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		die("cannot ignore SIGPIPE");

	/* The only mmap whose address the kernel chooses. */
	total = (2 * moat + 2 * guard + region) * page_size;
	span = syscall(SYS_mmap, 0UL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1L, 0L);
	if (span == -1)
		die("cannot reserve the window");
	moat_lo = (u64)span;
	w_lo = moat_lo + moat * page_size;
	w_hi = w_lo + (2 * guard + region) * page_size;
	moat_hi = w_hi + moat * page_size;
	if (syscall(SYS_munmap, moat_lo, moat * page_size) != 0 ||
	    syscall(SYS_munmap, w_hi, moat * page_size) != 0)
		die("cannot carve the moats");
	memfd = syscall(SYS_memfd_create, "safemm", 0U);
	if (memfd < 0 || dup2((int)memfd, MEMFD) != MEMFD || close((int)memfd) != 0)
		die("cannot make the memfd");
	do_reset();
}

int main(int argc, char **argv)
{
	if (argc != 4)
		die("usage: executor REGION_PAGES GUARD_PAGES MOAT_PAGES");
	u64 region = arg_u64(argv[1], 256), guard = arg_u64(argv[2], 16), moat = arg_u64(argv[3], 256);
	if (region == 0 || moat == 0)
		die("the region and the moats need at least one page");
	setup(region, guard, moat);

	out_str("{\"kind\":\"hello\",\"page_size\":");
	out_u64(page_size);
	out_str(",\"moat_lo\":");
	out_u64(moat_lo);
	out_str(",\"window\":");
	out_u64(w_lo);
	out_str(",\"window_end\":");
	out_u64(w_hi);
	out_str(",\"moat_hi\":");
	out_u64(moat_hi);
	out_str(",\"pid\":");
	out_u64((u64)getpid());
	out_maps();
	out_char('}');
	out_flush();

	serve();
	return 0;
}
