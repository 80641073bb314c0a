/* libFuzzer harness: short codes and aliases, as they arrive in a path
 * (GET /{code}) or in a body ("alias"). Invariants: an accepted alias is
 * syntactically a code and not a reserved word; a reserved word is never
 * accepted; syntax and reservation do not depend on letter case where the
 * rules say so (reserved words match in any case); a code drawn at random
 * always passes the syntax check. */
#include <assert.h>
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/idgen.h"
#include "link/link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *why = NULL;
	int syntax = link_code_syntax_ok(s, size);
	int reserved = link_code_reserved(s, size);
	int alias_ok = link_alias_check(s, size, &why) == 0;
	if (alias_ok) {
		assert(syntax);
		assert(!reserved);
	} else {
		assert(why && why[0]);
	}
	assert(!syntax || (size >= 1 && size <= LINK_CODE_MAX));
	if (size <= 256) {
		char flipped[256];
		for (size_t i = 0; i < size; i++)
			flipped[i] = (char)(isupper(data[i]) ? tolower(data[i]) : toupper(data[i]));
		assert(link_code_syntax_ok(flipped, size) == syntax);
		assert(link_code_reserved(flipped, size) == reserved);
	}
	if (size >= 1 && size <= 32) {
		char code[32];
		if (code_random(code, size) == 0)
			assert(link_code_syntax_ok(code, size));
	}
	return 0;
}
