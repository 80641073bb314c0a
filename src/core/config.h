/*
 * config: every option of shortd, declared once.
 *
 * The table in config.c lists each option's name, type, default, bounds,
 * environment variable and help text. The same table drives command-line
 * flags (--name VALUE or --name=VALUE), SHORTD_* environment variables, the
 * optional config file (--config FILE: "name = value" lines, # comments) and
 * --help. Precedence, lowest first: default, config file, environment, flag.
 * Unknown flags or file keys and out-of-bounds values are refused; the
 * caller exits with 2. Unknown SHORTD_* variables only draw a warning, as
 * orchestrators define their own with a service's name as prefix.
 */
#ifndef SHORTD_CONFIG_H
#define SHORTD_CONFIG_H

#include <stdio.h>

struct config {
	char *listen;        /* ADDR:PORT */
	char *data_dir;
	char *base_url;      /* "" = derived from listen */
	char *config_file;
	char *log_level;
	char *access_log;     /* "" = off, "-" = stderr */
	char *metrics_listen; /* "" = /metrics on the main listener */
	char *geoip;          /* "auto", "off" or a .mmdb file */
	int threads;         /* 0 = number of cores */
	int code_length;
	int node_id;
	int cache_mb;
	int code_map;
	int cache_ttl_s;
	int negative_ttl_s;
	int redirect_status;
	int forward_query;
	int session_ttl_s;
	int sse_max, sse_per_key, sse_heartbeat_s;
	int max_conns;
	int max_conns_per_ip; /* 0: no cap */
	int max_unsent_mb;
	int header_timeout_s;
	int send_timeout_s;
	int keepalive_timeout_s;
	int drain_s;
	int commit_batch;
	int analytics;        /* 1: record clicks */
	int allow_anonymous;  /* 1: creates without an API key */
	int ip_rate, ip_burst;             /* per second, per client IP */
	int notfound_rate;                 /* per minute, burst the same */
	int create_rate, create_burst;     /* per minute, per user key */
	int anon_create_rate, anon_create_burst; /* per minute, per client IP */
	int ratelimit_entries;
	char *trusted_proxies;
	char *cors_origins;
	char *blocklist;
	int deny_private_targets;
	char *idn_restriction;   /* lookalike.h levels */
	char *lookalike_domains; /* "" = the built-in list */
	int flush_ms;
	int merge_s;
	char *pg;             /* "" = SQLite in data_dir */
	char *pg_replicas;    /* "" = reads on the primary */
	int pg_pool;
	int pg_timeout_ms;
};

enum config_result { CONFIG_OK = 0, CONFIG_HELP, CONFIG_VERSION, CONFIG_ERR };

/* A subcommand's own option: "--name VALUE" stores VALUE in *value. */
struct config_flag {
	const char *name;
	const char **value;
	int is_switch; /* takes no value: *value becomes "1" when given */
};

/* For subcommands (`shortd key`, `shortd import`): takes the subcommand's
 * own flags and at most one positional argument (into *positional, left
 * NULL if there is none) out of argv[first..argc), and loads the rest
 * (--data, --config, ...) as config_load does. */
enum config_result config_load_sub(struct config *cfg, int argc, char **argv, int first,
				   const struct config_flag *flags, size_t nflags,
				   const char **positional, char *err, size_t errlen);

/* Fills cfg from defaults, config file, environment and argv[first..argc).
 * On CONFIG_ERR, err holds a one-line message. cfg's strings are owned by
 * cfg and freed by config_release(). */
enum config_result config_load(struct config *cfg, int argc, char **argv, int first, char *err,
			       size_t errlen);
void config_release(struct config *cfg);
void config_print_help(FILE *out, const char *prog);
/* Prints the option table as a Markdown table (used to keep docs in step). */
void config_print_markdown(FILE *out);
/* The options as man(7) paragraphs (.TP), for the man page. */
void config_print_man_options(FILE *out);

#endif
