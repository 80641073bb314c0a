/*
 * config: the declarative option table and its four readers (defaults,
 * file, environment, flags). See config.h.
 */
#include "config.h"
#include "fault.h"
#include "log.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum opt_type { OPT_STR, OPT_INT };

struct option_def {
	const char *name;
	enum opt_type type;
	const char *def;
	long min, max; /* OPT_INT only */
	size_t offset;
	const char *help;
};

#define STR(field, name, def, help) {name, OPT_STR, def, 0, 0, offsetof(struct config, field), help}
#define INT(field, name, def, lo, hi, help)                                               \
	{name, OPT_INT, def, lo, hi, offsetof(struct config, field), help}

static const struct option_def options[] = {
	STR(listen, "listen", "127.0.0.1:8080", "address and port to serve HTTP on (IPv6: [::1]:8080)"),
	STR(data_dir, "data", "./data", "directory for the database and other state"),
	STR(base_url, "base-url", "", "public base URL of short links (default: http://LISTEN)"),
	STR(config_file, "config", "", "read options from this file (name = value lines)"),
	STR(log_level, "log-level", "info", "error, warn, info or debug"),
	STR(access_log, "access-log", "", "write an access log line per request to this file ('-': stderr)"),
	STR(metrics_listen, "metrics-listen", "",
	    "serve /metrics on this ADDR:PORT only (default: on --listen)"),
	STR(geoip, "geoip", "auto",
	    "country database for clicks, .mmdb or legacy .dat ('auto': usual paths, 'off')"),
	INT(threads, "threads", "0", 0, 256, "HTTP worker threads (0: one per core)"),
	INT(sse_max, "sse-max", "1000", 0, 100000,
	    "live click streams (GET .../events) open at once, in all"),
	INT(sse_per_key, "sse-per-key", "10", 1, 10000, "live click streams open at once per API key"),
	INT(sse_heartbeat_s, "sse-heartbeat-s", "15", 1, 300,
	    "a live click stream with nothing new sends a comment this often"),
	INT(session_ttl_s, "session-ttl-s", "604800", 1, 31536000,
	    "how long a web UI sign-in lasts, in seconds"),
	INT(forward_query, "forward-query", "0", 0, 1,
	    "new links pass a short URL's query string on to the target (per link: forward_query)"),
	INT(code_length, "code-length", "7", 5, 32, "length of generated short codes"),
	INT(node_id, "node-id", "0", 0, 1023, "node id embedded in row ids (unique per node)"),
	INT(cache_mb, "cache-mb", "256", 0, 1048576, "in-process link cache size in MiB (0: off)"),
	INT(code_map, "code-map", "1", 0, 1,
	    "1: keep which row holds each code in memory (11-23 bytes a link) for faster cache misses"),
	INT(cache_ttl_s, "cache-ttl-s", "3600", 1, 604800, "how long a cached link is trusted"),
	INT(negative_ttl_s, "negative-ttl-s", "5", 0, 3600, "how long an unknown code is cached"),
	INT(redirect_status, "redirect-status", "302", 301, 308,
	    "default redirect status: 301, 302, 307 or 308"),
	INT(max_conns, "max-conns", "10000", 1, 1000000, "open connections before answering 503"),
	INT(max_conns_per_ip, "max-conns-per-ip", "1000", 0, 1000000,
	    "open connections from one client address (IPv6: per /64) before answering 503; "
	    "trusted proxies have no cap (0: no cap)"),
	INT(max_unsent_mb, "max-unsent-mb", "64", 1, 65536,
	    "MiB of answers held, in all, for clients that do not read them; beyond it such a "
	    "client is disconnected"),
	INT(header_timeout_s, "header-timeout-s", "10", 1, 3600,
	    "time to receive a request's headers (and its body) before 408"),
	INT(send_timeout_s, "send-timeout-s", "30", 1, 3600,
	    "a client that reads no part of a response for this long is disconnected"),
	INT(keepalive_timeout_s, "keepalive-timeout-s", "60", 1, 3600,
	    "idle keep-alive connections are closed after this"),
	INT(drain_s, "drain-s", "10", 0, 3600, "on SIGTERM, time to finish in-flight requests"),
	INT(commit_batch, "commit-batch", "1024", 1, 100000,
	    "most writes committed in one transaction (group commit)"),
	INT(analytics, "analytics", "1", 0, 1, "1: count clicks (stats API), 0: do not"),
	INT(allow_anonymous, "allow-anonymous", "0", 0, 1,
	    "1: POST /api/v1/links works without an API key (with --anon-create-rate per IP)"),
	INT(ip_rate, "ip-rate", "1000", 0, 100000000,
	    "requests per second per client IP (IPv6: per /64), every route (0: off)"),
	INT(ip_burst, "ip-burst", "2000", 1, 100000000, "requests at once per client IP"),
	INT(notfound_rate, "notfound-rate", "30", 0, 1000000,
	    "404 answers per minute per client IP, burst included; then 429 for every code (0: off)"),
	INT(create_rate, "create-rate", "60", 0, 1000000,
	    "creates per minute per user key; admin keys are not limited (0: off)"),
	INT(create_burst, "create-burst", "20", 1, 1000000, "creates at once per user key"),
	INT(anon_create_rate, "anon-create-rate", "10", 0, 1000000,
	    "creates per minute per client IP without a key (--allow-anonymous; 0: off)"),
	INT(anon_create_burst, "anon-create-burst", "5", 1, 1000000,
	    "creates at once per client IP without a key"),
	INT(ratelimit_entries, "ratelimit-entries", "262144", 1024, 100000000,
	    "clients the rate limiters track (32 bytes each; idle ones are dropped first)"),
	STR(trusted_proxies, "trusted-proxies", "",
	    "proxies (addresses, CIDR blocks, comma-separated) whose X-Forwarded-For/Forwarded is believed"),
	STR(cors_origins, "cors-origins", "",
	    "origins allowed to call the API from a browser (comma-separated, or '*'; '': CORS off)"),
	STR(blocklist, "blocklist", "",
	    "file of domains (one per line) whose targets, subdomains included, are refused; reloaded on SIGHUP"),
	INT(deny_private_targets, "deny-private-targets", "0", 0, 1,
	    "1: refuse targets on loopback, private, link-local and other non-public IP addresses"),
	STR(idn_restriction, "idn-restriction", "moderately",
	    "international host names: highly, moderately or minimally (UTS #39 levels), or off"),
	STR(lookalike_domains, "lookalike-domains", "",
	    "file of domains (one per line) whose look-alike names are refused ('': a built-in list)"),
	INT(flush_ms, "flush-ms", "1000", 10, 60000,
	    "click counters are committed this often (the loss window on a crash)"),
	INT(merge_s, "click-merge-s", "60", 1, 3600,
	    "committed click counters are merged into the per-link tables this often"),
	STR(pg, "pg", "",
	    "PostgreSQL URI of the primary (postgresql://user@host:port/db; several hosts with "
	    "target_session_attrs=read-write follow a failover); '': SQLite in --data"),
	STR(pg_replicas, "pg-replicas", "",
	    "PostgreSQL URIs of hot standbys (comma-separated) that redirect cache misses read"),
	INT(pg_pool, "pg-pool", "2", 1, 64,
	    "PostgreSQL connections per server per worker thread, and for the writer"),
	INT(pg_timeout_ms, "pg-timeout-ms", "2000", 100, 600000,
	    "PostgreSQL connect and statement timeout; a server that misses it is left alone a while"),
};

static const struct option_def *find_option(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_LEN(options); i++) {
		if (strlen(options[i].name) == len && memcmp(options[i].name, name, len) == 0)
			return &options[i];
	}
	return NULL;
}

static void env_name(const struct option_def *o, char *out, size_t cap)
{
	size_t n = (size_t)snprintf(out, cap, "SHORTD_");
	for (const char *p = o->name; *p && n + 1 < cap; p++)
		out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	out[n] = '\0';
}

/* Stores value into cfg; returns 0, or -1 with err filled. */
static int set_option(struct config *cfg, const struct option_def *o, const char *value,
		      const char *origin, char *err, size_t errlen)
{
	char *field = (char *)cfg + o->offset;
	if (o->type == OPT_STR) {
		char **sp = (char **)field;
		free(*sp);
		*sp = xstrdup(value);
		return 0;
	}
	errno = 0;
	char *end;
	long v = strtol(value, &end, 10);
	if (errno || end == value || *end != '\0' || !isdigit((unsigned char)value[0])) {
		snprintf(err, errlen, "invalid value '%s' for option '%s' (%s): expected an integer",
			 value, o->name, origin);
		return -1;
	}
	if (v < o->min || v > o->max) {
		snprintf(err, errlen, "value %ld for option '%s' (%s) is out of range %ld..%ld", v,
			 o->name, origin, o->min, o->max);
		return -1;
	}
	*(int *)field = (int)v;
	return 0;
}

static int load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "unable to open config file '%s': %s", path, strerror(errno));
		return -1;
	}
	char line[4096];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *s = line;
		while (isspace((unsigned char)*s))
			s++;
		if (*s == '#' || *s == '\0')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, errlen, "config file '%s' line %d: expected 'name = value'", path,
				 lineno);
			rc = -1;
			break;
		}
		char *ne = eq;
		while (ne > s && isspace((unsigned char)ne[-1]))
			ne--;
		char *v = eq + 1;
		while (isspace((unsigned char)*v))
			v++;
		char *ve = v + strlen(v);
		while (ve > v && isspace((unsigned char)ve[-1]))
			ve--;
		*ve = '\0';
		const struct option_def *o = find_option(s, (size_t)(ne - s));
		if (!o || strcmp(o->name, "config") == 0) {
			snprintf(err, errlen, "config file '%s' line %d: unknown option '%.*s'", path,
				 lineno, (int)(ne - s), s);
			rc = -1;
			break;
		}
		char origin[64];
		snprintf(origin, sizeof(origin), "config file line %d", lineno);
		if (set_option(cfg, o, v, origin, err, errlen) != 0) {
			rc = -1;
			break;
		}
	}
	fclose(f);
	return rc;
}

extern char **environ;

static int load_env(struct config *cfg, char *err, size_t errlen)
{
	for (char **e = environ; *e; e++) {
		if (strncmp(*e, "SHORTD_", 7) != 0)
			continue;
		const char *eq = strchr(*e, '=');
		if (!eq || (FAULTS_COMPILED && strncmp(*e, "SHORTD_FAULT_FILE=", 18) == 0))
			continue; /* a test build's fault control (core/fault.h) */
		const struct option_def *o = NULL;
		for (size_t i = 0; i < ARRAY_LEN(options); i++) {
			char name[64];
			env_name(&options[i], name, sizeof(name));
			if (strlen(name) == (size_t)(eq - *e) && memcmp(name, *e, (size_t)(eq - *e)) == 0)
				o = &options[i];
		}
		if (!o) {
			/* Not refused: orchestrators add variables with the
			 * service's name as prefix (Kubernetes service links set
			 * SHORTD_PORT=tcp://... for a Service named shortd). */
			log_warn("ignoring unknown environment variable '%.*s'", (int)(eq - *e), *e);
			continue;
		}
		if (strcmp(o->name, "config") == 0)
			continue; /* read earlier, before the file */
		if (set_option(cfg, o, eq + 1, "environment", err, errlen) != 0)
			return -1;
	}
	return 0;
}

/* Walks argv; when apply is 0 only --config is taken (it must be read first). */
static enum config_result load_flags(struct config *cfg, int argc, char **argv, int first,
				     int apply, char *err, size_t errlen)
{
	for (int i = first; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			return CONFIG_HELP;
		if (strcmp(a, "--version") == 0)
			return CONFIG_VERSION;
		if (strncmp(a, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument '%s'", a);
			return CONFIG_ERR;
		}
		const char *name = a + 2, *eq = strchr(name, '='), *value;
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const struct option_def *o = find_option(name, nlen);
		if (!o) {
			snprintf(err, errlen, "unknown option '--%.*s' (see --help)", (int)nlen, name);
			return CONFIG_ERR;
		}
		if (eq) {
			value = eq + 1;
		} else {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "option '--%s' needs a value", o->name);
				return CONFIG_ERR;
			}
			value = argv[++i];
		}
		if (apply != (strcmp(o->name, "config") != 0))
			continue;
		if (set_option(cfg, o, value, "command line", err, errlen) != 0)
			return CONFIG_ERR;
	}
	return CONFIG_OK;
}

static int validate(const struct config *cfg, char *err, size_t errlen)
{
	int rs = cfg->redirect_status;
	if (rs != 301 && rs != 302 && rs != 307 && rs != 308) {
		snprintf(err, errlen, "option 'redirect-status' must be 301, 302, 307 or 308, not %d", rs);
		return -1;
	}
	if (strcmp(cfg->log_level, "error") && strcmp(cfg->log_level, "warn") &&
	    strcmp(cfg->log_level, "info") && strcmp(cfg->log_level, "debug")) {
		snprintf(err, errlen, "option 'log-level' must be error, warn, info or debug, not '%s'",
			 cfg->log_level);
		return -1;
	}
	if (cfg->data_dir[0] == '\0') {
		snprintf(err, errlen, "option 'data' must not be empty");
		return -1;
	}
	return 0;
}

enum config_result config_load(struct config *cfg, int argc, char **argv, int first, char *err,
			       size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < ARRAY_LEN(options); i++) {
		char e[128];
		if (set_option(cfg, &options[i], options[i].def, "default", e, sizeof(e)) != 0)
			abort(); /* a bad default is a bug in the table */
	}
	enum config_result r = load_flags(cfg, argc, argv, first, 0, err, errlen);
	if (r != CONFIG_OK)
		return r;
	const char *envcfg = getenv("SHORTD_CONFIG");
	if (cfg->config_file[0] == '\0' && envcfg && envcfg[0]) {
		free(cfg->config_file);
		cfg->config_file = xstrdup(envcfg);
	}
	if (cfg->config_file[0] && load_file(cfg, cfg->config_file, err, errlen) != 0)
		return CONFIG_ERR;
	if (load_env(cfg, err, errlen) != 0)
		return CONFIG_ERR;
	r = load_flags(cfg, argc, argv, first, 1, err, errlen);
	if (r != CONFIG_OK)
		return r;
	return validate(cfg, err, errlen) == 0 ? CONFIG_OK : CONFIG_ERR;
}

enum config_result config_load_sub(struct config *cfg, int argc, char **argv, int first,
				   const struct config_flag *flags, size_t nflags,
				   const char **positional, char *err, size_t errlen)
{
	char **rest = xcalloc((size_t)argc + 1, sizeof(*rest));
	int nrest = 0;
	rest[nrest++] = argv[0];
	int value_next = 0; /* the last one was an option of the table: its value */
	for (int i = first; i < argc; i++) {
		const char *a = argv[i];
		if (value_next) {
			rest[nrest++] = argv[i];
			value_next = 0;
			continue;
		}
		size_t f = 0;
		while (f < nflags && !(strcmp(a, flags[f].name) == 0 &&
				       (flags[f].is_switch || i + 1 < argc)))
			f++;
		if (f < nflags && flags[f].is_switch) {
			*flags[f].value = "1";
		} else if (f < nflags) {
			*flags[f].value = argv[++i];
		} else if ((a[0] != '-' || strcmp(a, "-") == 0) && !*positional) {
			*positional = a; /* "-": standard input */
		} else {
			rest[nrest++] = argv[i];
			value_next = strncmp(a, "--", 2) == 0 && !strchr(a, '=') &&
				     strcmp(a, "--help") != 0 && strcmp(a, "--version") != 0;
		}
	}
	enum config_result rc = config_load(cfg, nrest, rest, 1, err, errlen);
	free(rest);
	return rc;
}

void config_release(struct config *cfg)
{
	for (size_t i = 0; i < ARRAY_LEN(options); i++) {
		if (options[i].type == OPT_STR) {
			char **sp = (char **)((char *)cfg + options[i].offset);
			free(*sp);
			*sp = NULL;
		}
	}
}

void config_print_help(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [serve] [options]\n\n"
		"The service: POST /api/v1/links creates a short link, GET /{code} redirects.\n\n"
		"options (flag, environment variable, default; every subcommand takes them too):\n",
		prog);
	for (size_t i = 0; i < ARRAY_LEN(options); i++) {
		char env[64];
		env_name(&options[i], env, sizeof(env));
		fprintf(out, "  --%-22s %s\n  %-24s env %s, default '%s'\n", options[i].name,
			options[i].help, "", env, options[i].def);
	}
	fprintf(out, "\n  --help                   show this help\n"
		     "  --version                show the version\n");
}

void config_print_markdown(FILE *out)
{
	fprintf(out, "| option | environment | default | meaning |\n|---|---|---|---|\n");
	for (size_t i = 0; i < ARRAY_LEN(options); i++) {
		char env[64];
		env_name(&options[i], env, sizeof(env));
		if (options[i].def[0])
			fprintf(out, "| `--%s` | `%s` | `%s` | %s |\n", options[i].name, env,
				options[i].def, options[i].help);
		else
			fprintf(out, "| `--%s` | `%s` | (none) | %s |\n", options[i].name, env,
				options[i].help);
	}
}

/* Text for roff: a leading '.' or '\'' and every backslash escaped, '-'
 * as a hyphen-minus (roff's '-' is a hyphen). */
static void roff_text(FILE *out, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", out);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-')
			fputs("\\-", out);
		else
			fputc(*s, out);
	}
}

void config_print_man_options(FILE *out)
{
	for (size_t i = 0; i < ARRAY_LEN(options); i++) {
		char env[64];
		env_name(&options[i], env, sizeof(env));
		fputs(".TP\n.BI \\-\\-", out);
		roff_text(out, options[i].name);
		fputs(" \" ", out);
		fputs(options[i].type == OPT_INT ? "N" : "VALUE", out);
		fputs("\"\n", out);
		roff_text(out, options[i].help);
		fputs(".\nEnvironment: \n.BR ", out);
		fputs(env, out);
		fputs(" ;\ndefault: ", out);
		roff_text(out, options[i].def[0] ? options[i].def : "(none)");
		fputs(".\n", out);
	}
}
