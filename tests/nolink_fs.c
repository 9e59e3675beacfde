/*
 * nolink_fs: a FUSE passthrough filesystem whose link() fails with ENOTSUP.
 *
 *   nolink_fs [--die-with-parent] [FUSE options] SOURCE MOUNTPOINT
 *   e.g.  nolink_fs -f -o auto_unmount /tmp/src /tmp/mnt
 *
 * lockkit's tests use it for the filesystems (some FUSE and network ones)
 * that refuse hard links but still create O_EXCL files atomically.  Every
 * operation is forwarded to the same system call on the matching path under
 * SOURCE; only link() is refused.  Built by the nolink_dir fixture in
 * tests/mounts.py with
 *
 *   cc -O2 -Wall nolink_fs.c $(pkg-config --cflags --libs fuse3) -o nolink_fs
 *
 * What each lock test on this mount relies on:
 *
 * - File handles are the underlying descriptors (fi->fh) and data goes
 *   through pread/pwrite on them, so the worker threads never share a file
 *   position.  open/create pass the caller's flags on, so O_CREAT|O_EXCL is
 *   decided atomically by the underlying filesystem.
 * - Attribute, entry and negative-lookup caching is off (timeouts 0), and
 *   inode numbers are the underlying ones (use_ino).
 * - There are no flock/lock operations on purpose: without them the kernel
 *   keeps flock() and fcntl() locks itself, exactly, for every process on
 *   this machine.
 * - A file unlinked (or renamed over) while open is not removed by libfuse
 *   but renamed to ".fuse_hidden<16 hex digits>" and unlinked at its last
 *   release, so fstat() on an open descriptor keeps working (the kernel sends
 *   no file handle with it; libfuse then reports st_nlink - 1 = 0).  Here
 *   every such name maps into the private directory SOURCE/.nolinkfs-hidden,
 *   which the mount does not show: the name vanishes at once, listings stay
 *   clean and the directory can be removed, as on a disk filesystem.
 *   Consequences: a file really named .fuse_hidden<16 hex> cannot be reached
 *   through the mount, and (a libfuse limitation) rename with
 *   RENAME_NOREPLACE over a target that is open somewhere replaces it,
 *   because libfuse hides the target before asking us to rename.
 */

#define FUSE_USE_VERSION 31
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define STASH ".nolinkfs-hidden"
#define HIDDEN_PREFIX ".fuse_hidden"

static const char *root; /* absolute path of SOURCE */

/* 0 if the call succeeded, else -errno: the convention of every operation. */
#define CHECK(call) ((call) == -1 ? -errno : 0)

/* Whether name is one libfuse gives a file it hides: prefix + 16 hex digits. */
static int is_hidden_name(const char *name)
{
	size_t plen = strlen(HIDDEN_PREFIX);

	if (strncmp(name, HIDDEN_PREFIX, plen) != 0 || strlen(name) != plen + 16)
		return 0;
	return strspn(name + plen, "0123456789abcdef") == 16;
}

/*
 * The source path behind a path of the mount (always absolute): ROOT + path,
 * or the stash for hidden names.  The stash itself does not exist for the
 * mount.  0 or -errno.
 */
static int source_path(const char *path, char out[PATH_MAX])
{
	size_t slen = strlen(STASH);
	const char *name = strrchr(path, '/') + 1;
	int n;

	if (strncmp(path + 1, STASH, slen) == 0 &&
	    (path[1 + slen] == '\0' || path[1 + slen] == '/'))
		return -ENOENT;
	if (is_hidden_name(name))
		n = snprintf(out, PATH_MAX, "%s/%s/%s", root, STASH, name);
	else
		n = snprintf(out, PATH_MAX, "%s%s", root, path);
	return n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* Declare `char var[PATH_MAX]` holding the source path of `path`, or return. */
#define SOURCE(var, path)                              \
	char var[PATH_MAX];                            \
	do {                                           \
		int err_ = source_path((path), var);   \
		if (err_)                              \
			return err_;                   \
	} while (0)

/* -- attributes ------------------------------------------------------------ */

static int nl_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	/* The kernel sends a handle only for regular files it has open. */
	if (fi)
		return CHECK(fstat(fi->fh, st));
	SOURCE(p, path);
	return CHECK(lstat(p, st));
}

static int nl_access(const char *path, int mask)
{
	SOURCE(p, path);
	return CHECK(access(p, mask));
}

static int nl_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (fi)
		return CHECK(fchmod(fi->fh, mode));
	SOURCE(p, path);
	return CHECK(chmod(p, mode));
}

static int nl_chown(const char *path, uid_t uid, gid_t gid,
		    struct fuse_file_info *fi)
{
	if (fi)
		return CHECK(fchown(fi->fh, uid, gid));
	SOURCE(p, path);
	return CHECK(lchown(p, uid, gid));
}

/* UTIME_NOW and UTIME_OMIT arrive as such and are passed on. */
static int nl_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	if (fi)
		return CHECK(futimens(fi->fh, tv));
	SOURCE(p, path);
	return CHECK(utimensat(AT_FDCWD, p, tv, AT_SYMLINK_NOFOLLOW));
}

static int nl_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	if (fi) /* ftruncate(): the caller's file, whatever the path names now */
		return CHECK(ftruncate(fi->fh, size));
	SOURCE(p, path);
	return CHECK(truncate(p, size));
}

static int nl_statfs(const char *path, struct statvfs *sv)
{
	SOURCE(p, path);
	return CHECK(statvfs(p, sv));
}

/* -- names ----------------------------------------------------------------- */

static int nl_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
		      off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	int at_root = strcmp(path, "/") == 0;
	struct dirent *d;
	DIR *dir;

	SOURCE(p, path);
	dir = opendir(p);
	if (!dir)
		return -errno;
	/* Offset 0 for every entry: libfuse collects the whole listing. */
	while ((d = readdir(dir)) != NULL) {
		struct stat st = { .st_ino = d->d_ino, .st_mode = DTTOIF(d->d_type) };

		if (at_root && strcmp(d->d_name, STASH) == 0)
			continue;
		if (fill(buf, d->d_name, &st, 0, 0))
			break;
	}
	closedir(dir);
	return 0;
}

/* Modes are masked with the caller's umask here (ours is 0, see main). */
static int nl_mkdir(const char *path, mode_t mode)
{
	SOURCE(p, path);
	return CHECK(mkdir(p, mode & ~fuse_get_context()->umask));
}

static int nl_mknod(const char *path, mode_t mode, dev_t rdev)
{
	SOURCE(p, path);
	return CHECK(mknod(p, mode & ~fuse_get_context()->umask, rdev));
}

static int nl_rmdir(const char *path)
{
	SOURCE(p, path);
	return CHECK(rmdir(p));
}

/* Also how libfuse removes a hidden file at its last release. */
static int nl_unlink(const char *path)
{
	SOURCE(p, path);
	return CHECK(unlink(p));
}

/* Hiding an open file is a rename to a hidden name, i.e. into the stash. */
static int nl_rename(const char *from, const char *to, unsigned int flags)
{
	SOURCE(a, from);
	SOURCE(b, to);
	if (flags) /* RENAME_NOREPLACE, RENAME_EXCHANGE...: the kernel decides */
		return CHECK(renameat2(AT_FDCWD, a, AT_FDCWD, b, flags));
	return CHECK(rename(a, b));
}

/* target: the link's text; path: where to make it. */
static int nl_symlink(const char *target, const char *path)
{
	SOURCE(p, path);
	return CHECK(symlink(target, p));
}

static int nl_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n;

	SOURCE(p, path);
	n = readlink(p, buf, size - 1);
	if (n == -1)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* The point of this filesystem. */
static int nl_link(const char *from, const char *to)
{
	return -ENOTSUP;
}

/* -- open files ------------------------------------------------------------ */

static int nl_open(const char *path, struct fuse_file_info *fi)
{
	int fd;

	SOURCE(p, path);
	fd = open(p, fi->flags | O_CLOEXEC);
	if (fd == -1)
		return -errno;
	fi->fh = fd;
	return 0;
}

/* fi->flags still hold O_CREAT|O_EXCL: the source filesystem picks the winner. */
static int nl_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int fd;

	SOURCE(p, path);
	fd = open(p, fi->flags | O_CREAT | O_CLOEXEC,
		  mode & ~fuse_get_context()->umask);
	if (fd == -1)
		return -errno;
	fi->fh = fd;
	return 0;
}

/* Loops over short transfers: a short read would mean end of file. */
static int nl_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	size_t done = 0;

	while (done < size) {
		ssize_t n = pread(fi->fh, buf + done, size - done, off + done);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return done ? (int)done : -errno;
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

static int nl_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	size_t done = 0;

	while (done < size) {
		ssize_t n = pwrite(fi->fh, buf + done, size - done, off + done);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return done ? (int)done : -errno;
		if (n == 0) /* cannot happen on a regular file; never spin */
			break;
		done += n;
	}
	return done;
}

static int nl_fallocate(const char *path, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	return CHECK(fallocate(fi->fh, mode, off, len));
}

/* Called at every close() of a descriptor: close a duplicate, so that the
 * source filesystem sees the close too (and can report deferred errors). */
static int nl_flush(const char *path, struct fuse_file_info *fi)
{
	return CHECK(close(dup(fi->fh)));
}

/* The last close of the caller's open file. */
static int nl_release(const char *path, struct fuse_file_info *fi)
{
	close(fi->fh);
	return 0;
}

static int nl_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	return CHECK(datasync ? fdatasync(fi->fh) : fsync(fi->fh));
}

/* -- the mount --------------------------------------------------------------- */

/* Empty the stash: anything in it belonged to a previous mount. */
static void clear_stash(void)
{
	char p[PATH_MAX];
	struct dirent *d;
	DIR *dir;

	snprintf(p, sizeof(p), "%s/%s", root, STASH);
	dir = opendir(p);
	if (!dir)
		return;
	while ((d = readdir(dir)) != NULL)
		unlinkat(dirfd(dir), d->d_name, 0); /* "." and "..": EISDIR */
	closedir(dir);
}

static void *nl_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1;
	cfg->attr_timeout = 0;
	cfg->entry_timeout = 0;
	cfg->negative_timeout = 0;
	return NULL;
}

/* At unmount: libfuse has unlinked the hidden files still open by now. */
static void nl_destroy(void *data)
{
	char p[PATH_MAX];

	clear_stash();
	snprintf(p, sizeof(p), "%s/%s", root, STASH);
	rmdir(p);
}

static const struct fuse_operations ops = {
	.init = nl_init,
	.destroy = nl_destroy,
	.getattr = nl_getattr,
	.access = nl_access,
	.chmod = nl_chmod,
	.chown = nl_chown,
	.utimens = nl_utimens,
	.truncate = nl_truncate,
	.statfs = nl_statfs,
	.readdir = nl_readdir,
	.mkdir = nl_mkdir,
	.mknod = nl_mknod,
	.rmdir = nl_rmdir,
	.unlink = nl_unlink,
	.rename = nl_rename,
	.symlink = nl_symlink,
	.readlink = nl_readlink,
	.link = nl_link,
	.open = nl_open,
	.create = nl_create,
	.read = nl_read,
	.write = nl_write,
	.fallocate = nl_fallocate,
	.flush = nl_flush,
	.release = nl_release,
	.fsync = nl_fsync,
	/* no .flock, no .lock: the kernel's local locks stay in charge */
};

static int die_with_parent;

static const struct fuse_opt our_opts[] = {
	{ "--die-with-parent", 0, 1 }, /* offset 0: sets die_with_parent */
	FUSE_OPT_END
};

/* The first non-option argument is SOURCE; the rest goes to libfuse. */
static int take_source(void *data, const char *arg, int key,
		       struct fuse_args *args)
{
	if (key == FUSE_OPT_KEY_NONOPT && root == NULL) {
		root = realpath(arg, NULL);
		if (root == NULL) {
			fprintf(stderr, "nolink_fs: %s: %s\n", arg, strerror(errno));
			return -1;
		}
		return 0;
	}
	return 1;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	char stash[PATH_MAX];
	struct stat st;
	int res;

	if (fuse_opt_parse(&args, &die_with_parent, our_opts, take_source) == -1)
		return 2;
	if (root == NULL || stat(root, &st) == -1 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "usage: %s [--die-with-parent] [FUSE options] "
			"SOURCE_DIR MOUNTPOINT\n", argv[0]);
		return 2;
	}
	if (die_with_parent) {
		/* SIGTERM (so: unmount) when the process that started us dies,
		 * so that a killed test run leaves no mount behind. */
		pid_t parent = getppid();

		if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1 || getppid() != parent)
			return 1;
	}
	snprintf(stash, sizeof(stash), "%s/%s", root, STASH);
	if (mkdir(stash, 0700) == -1 && errno != EEXIST) {
		perror(stash);
		return 1;
	}
	clear_stash();
	/* Callers' umasks are applied by hand; ours must not apply again. */
	umask(0);

	/* Defaults first, so that options on the command line override them.
	 * Mount type "fuse.nolinkfs", source "nolinkfs".  Setting
	 * max_idle_threads also keeps libfuse 3.14 from logging about its own
	 * unset default. */
	fuse_opt_insert_arg(&args, 1, "-ofsname=nolinkfs,subtype=nolinkfs,"
			    "max_threads=32,max_idle_threads=8");
	res = fuse_main(args.argc, args.argv, &ops, NULL);
	fuse_opt_free_args(&args);
	/* libfuse 3.14 returns 8 ("loop failed") when a signal ended the loop,
	 * after unmounting: the normal way to stop us, not a failure. */
	return res == 8 ? 0 : res;
}
