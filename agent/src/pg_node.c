/*
 * pg_node.c
 *    Running initdb and pg_ctl for the agent's node.
 *
 * PostgreSQL refuses to run as root, so when the agent is root every
 * program runs as the postgres user (runuser), on directories it owns.  The
 * server is only ever addressed by its data directory, never by process
 * name.  Settings the agent owns (port, pg_paxos, node id) live in
 * data/paxosd.conf, rewritten before each start and included from
 * postgresql.conf, so that a changed configuration takes effect on restart.
 */
#include "pg_node.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int run_as_postgres(char *const argv[], const char *outfile);
static int write_file(const char *path, const char *text, int append);
static int pgn_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
pgn_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * run_as_postgres runs a program (argv[0] an absolute path) and returns its
 * exit status, or -1.  Output goes to outfile (appended) or /dev/null.  The
 * child does only async-signal-safe work between fork and exec: the agent
 * has threads.
 */
static int
run_as_postgres(char *const argv[], const char *outfile)
{
	char *full[32];
	int n = 0, i, status, fd;
	pid_t pid;

	if (geteuid() == 0)
	{
		full[n++] = "/usr/sbin/runuser";
		full[n++] = "-u";
		full[n++] = "postgres";
		full[n++] = "--";
	}
	for (i = 0; argv[i] != NULL && n < 31; i++)
		full[n++] = argv[i];
	full[n] = NULL;

	fd = open(outfile ? outfile : "/dev/null",
			  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	pid = fork();
	if (pid < 0)
	{
		close(fd);
		return -1;
	}
	if (pid == 0)
	{
		int nul = open("/dev/null", O_RDONLY);

		if (nul >= 0)
			dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(full[0], full);
		_exit(127);
	}
	close(fd);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int
write_file(const char *path, const char *text, int append)
{
	FILE *f = fopen(path, append ? "a" : "w");

	if (f == NULL)
		return -1;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

static void
chown_postgres(const char *path)
{
	struct passwd *pw;

	if (geteuid() != 0 || (pw = getpwnam("postgres")) == NULL)
		return;
	if (chown(path, pw->pw_uid, pw->pw_gid) != 0)
		fprintf(stderr, "paxosd: chown %s: %s\n", path, strerror(errno));
}

/* file_contains: whether the file holds the string (small files only). */
static int
file_contains(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	int found = 0;

	if (f == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/* write_agent_conf rewrites data/paxosd.conf from the configuration. */
static int
write_agent_conf(const cfg_config *cfg, char *err, size_t errlen)
{
	const cfg_node *self = cfg_self(cfg);
	char path[CFG_STR + 64], text[2048], include[CFG_STR + 64];

	snprintf(path, sizeof(path), "%s/data/paxosd.conf", cfg->data_dir);
	snprintf(text, sizeof(text),
			 "# written by paxosd at every start; edit paxosd's config "
			 "instead\n"
			 "port = %d\n"
			 "listen_addresses = '%s'\n"
			 "unix_socket_directories = '%s'\n"
			 "shared_preload_libraries = 'pg_paxos'\n"
			 "pg_paxos.node_id = '%d'\n",
			 self->pg_port, self->host, cfg->data_dir, cfg->node_id);
	if (write_file(path, text, 0) != 0)
		return pgn_fail(err, errlen, "cannot write %s: %s", path,
						strerror(errno));
	chown_postgres(path);

	/* older data directories (scripts/demo.sh) lack the include */
	snprintf(include, sizeof(include), "%s/data/postgresql.conf",
			 cfg->data_dir);
	if (!file_contains(include, "include_if_exists = 'paxosd.conf'") &&
		write_file(include,
				   "\n# settings owned by paxosd\n"
				   "include_if_exists = 'paxosd.conf'\n",
				   1) != 0)
		return pgn_fail(err, errlen, "cannot write %s: %s", include,
						strerror(errno));
	return 0;
}

int
pgn_prepare(const cfg_config *cfg, char *err, size_t errlen)
{
	char data[CFG_STR + 16], version[CFG_STR + 32], initdb[CFG_STR + 16],
		log[CFG_STR + 32], hba[CFG_STR + 32];
	struct stat st;

	if (mkdir(cfg->data_dir, 0755) != 0 && errno != EEXIST)
		return pgn_fail(err, errlen, "cannot create %s: %s", cfg->data_dir,
						strerror(errno));
	chown_postgres(cfg->data_dir);
	snprintf(data, sizeof(data), "%s/data", cfg->data_dir);
	snprintf(version, sizeof(version), "%s/PG_VERSION", data);
	if (stat(version, &st) != 0)
	{
		char *argv[] = {initdb,  "-D", data,   "-U",         "postgres", "-A",
						"trust", "-E", "UTF8", "--locale=C", NULL,       NULL};

		snprintf(initdb, sizeof(initdb), "%s/initdb", cfg->pg_bindir);
		snprintf(log, sizeof(log), "%s/initdb.log", cfg->data_dir);
		if (cfg->fast_initdb)
			argv[10] = "--no-sync";
		if (run_as_postgres(argv, log) != 0)
			return pgn_fail(err, errlen, "initdb failed; see %s", log);
		/* local connections are trusted: see docs/security.md */
		snprintf(hba, sizeof(hba), "%s/pg_hba.conf", data);
		if (write_file(hba,
					   "local all all trust\n"
					   "host all all 127.0.0.1/32 trust\n",
					   0) != 0)
			return pgn_fail(err, errlen, "cannot write %s", hba);
		fprintf(stderr, "paxosd: node %d: initialised %s\n", cfg->node_id,
				data);
	}
	return write_agent_conf(cfg, err, errlen);
}

/* pg_ctl runs pg_ctl with the given action arguments. */
static int
pg_ctl(const cfg_config *cfg, char *const args[])
{
	char prog[CFG_STR + 16], data[CFG_STR + 16], log[CFG_STR + 32];
	char *argv[16];
	int n = 0, i;

	snprintf(prog, sizeof(prog), "%s/pg_ctl", cfg->pg_bindir);
	snprintf(data, sizeof(data), "%s/data", cfg->data_dir);
	snprintf(log, sizeof(log), "%s/pg_ctl.log", cfg->data_dir);
	argv[n++] = prog;
	argv[n++] = "-D";
	argv[n++] = data;
	for (i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return run_as_postgres(argv, log);
}

int
pgn_running(const cfg_config *cfg)
{
	char *args[] = {"status", NULL};

	return pg_ctl(cfg, args) == 0;
}

int
pgn_start(const cfg_config *cfg, char *err, size_t errlen)
{
	char log[CFG_STR + 32];
	char *args[] = {"-l", log, "-w", "-t", "60", "start", NULL};

	if (pgn_running(cfg))
		return 0;
	if (write_agent_conf(cfg, err, errlen) != 0)
		return -1;
	snprintf(log, sizeof(log), "%s/postgresql.log", cfg->data_dir);
	if (pg_ctl(cfg, args) != 0)
		return pgn_fail(err, errlen,
						"PostgreSQL of node %d did not start; see %s",
						cfg->node_id, log);
	return 0;
}

int
pgn_stop(const cfg_config *cfg, const char *mode, char *err, size_t errlen)
{
	char *args[] = {"-m", (char *) mode, "-w", "-t", "60", "stop", NULL};

	if (!pgn_running(cfg))
		return 0;
	if (pg_ctl(cfg, args) != 0)
		return pgn_fail(err, errlen, "pg_ctl stop -m %s failed for node %d",
						mode, cfg->node_id);
	return 0;
}
