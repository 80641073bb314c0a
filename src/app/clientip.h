/*
 * clientip: who the client is, when shortd stands behind proxies.
 *
 * The socket peer is the client, unless it is one of --trusted-proxies
 * (a comma-separated list of addresses and CIDR blocks). Then the client is
 * the rightmost address of X-Forwarded-For (or, without it, of the
 * Forwarded header's for= parameters) that is not itself a trusted proxy:
 * addresses to the left of it were written by a party nobody vouches for.
 * A header that does not parse leaves the peer as the client.
 */
#ifndef SHORTD_CLIENTIP_H
#define SHORTD_CLIENTIP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http/http_parser.h"

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	int bits;
};

struct trusted_proxies {
	struct cidr *v;
	size_t n;
};

/* 0, or -1 with a message in err. */
int trusted_proxies_parse(const char *list, struct trusted_proxies *out, char *err,
			  size_t errlen);
void trusted_proxies_release(struct trusted_proxies *t);

/* 1 if a is one of the trusted proxies. */
int trusted_proxy(const struct trusted_proxies *t, const struct sockaddr_storage *a);

/* The client of req, which arrived from peer, into out. */
void client_addr(const struct trusted_proxies *t, const struct http_request *req,
		 const struct sockaddr_storage *peer, struct sockaddr_storage *out);

/* The bytes that identify a client for limits: an IPv4 address, or the /64
 * of an IPv6 one (a household or a server usually gets a /64). Returns the
 * length written to out (at most 8). */
size_t client_limit_key(const struct sockaddr_storage *a, uint8_t out[8]);

#endif
