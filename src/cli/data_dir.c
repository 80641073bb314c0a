/*
 * data_dir: what the subcommands check before they open an SQLite store.
 */
#include "cli.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cli_data_dir_ready(const struct config *cfg, const char *cmd, int init)
{
	if (cfg->pg[0] || init)
		return 0;
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/shortd.db", cfg->data_dir);
	if (access(path, F_OK) == 0)
		return 0;
	/* the path as the user can find it: absolute */
	char cwd[PATH_MAX] = "";
	const char *dir = cfg->data_dir;
	if (dir[0] != '/' && getcwd(cwd, sizeof(cwd)))
		snprintf(path, sizeof(path), "%s/%s", cwd,
			 strncmp(dir, "./", 2) == 0 ? dir + 2 : dir);
	else
		snprintf(path, sizeof(path), "%s", dir);
	fprintf(stderr,
		"shortd %s: no database in '%s'. Is --data right (the server's)? Start the "
		"server there first, or add --init to create an empty one.\n",
		cmd, path);
	return -1;
}
