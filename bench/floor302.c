/*
 * floor302: the least an HTTP/1.1 keep-alive server can do per request,
 * as a reference for bench.py's scenario 1 (not part of shortd).
 *
 * One thread, level-triggered epoll, one recv() and one send() per batch of
 * requests (a socket's read() and write() pass through the file layer
 * first), the system calls shortd makes per request. It does
 * not parse: every blank line ("\r\n\r\n") ends a request, which is answered
 * with one fixed 302. What it costs per request is what the kernel costs
 * (the TCP exchange over loopback, the wake-ups), so its requests per core
 * are a ceiling for any server built on epoll on the machine of the day, and
 * its latency is what the same load gives a server that does no work.
 *
 * Usage: floor302 PORT (listens on 127.0.0.1:PORT; ends on SIGTERM).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* About the size of nginx's `return 302` answer without its HTML body. */
static const char answer[] =
	"HTTP/1.1 302 Found\r\n"
	"Server: floor302\r\n"
	"Date: Mon, 23 Nov 2026 08:00:00 GMT\r\n"
	"Content-Length: 0\r\n"
	"Connection: keep-alive\r\n"
	"Location: https://example.com/bench/12345\r\n"
	"\r\n";
#define ANSWER_LEN (sizeof(answer) - 1)

#define IN_CAP 16384
#define OUT_CAP (IN_CAP / 4 * ANSWER_LEN) /* an answer for each 4 bytes read */

struct peer {
	int fd;
	size_t in_len, out_len, out_pos;
	char in[IN_CAP];
	char out[OUT_CAP];
};

static void peer_close(struct peer *p)
{
	close(p->fd); /* leaves the epoll set with its last descriptor */
	free(p);
}

/* Writes what is queued; 0 when all of it left, 1 if the kernel is full,
 * -1 on an error. */
static int peer_write(struct peer *p)
{
	while (p->out_pos < p->out_len) {
		ssize_t n = send(p->fd, p->out + p->out_pos, p->out_len - p->out_pos, MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN ? 1 : -1;
		p->out_pos += (size_t)n;
	}
	p->out_len = p->out_pos = 0;
	return 0;
}

/* Reads, answers every request complete in the buffer; -1: close. */
static int peer_read(struct peer *p)
{
	ssize_t n = recv(p->fd, p->in + p->in_len, IN_CAP - p->in_len, 0);
	if (n == 0 || (n < 0 && errno != EAGAIN))
		return -1;
	if (n < 0)
		return 0;
	p->in_len += (size_t)n;
	const char *at = p->in, *end = p->in + p->in_len, *blank;
	while ((blank = memmem(at, (size_t)(end - at), "\r\n\r\n", 4)) != NULL) {
		if (p->out_len + ANSWER_LEN > OUT_CAP)
			return -1; /* cannot happen: a request is at least 4 bytes */
		memcpy(p->out + p->out_len, answer, ANSWER_LEN);
		p->out_len += ANSWER_LEN;
		at = blank + 4;
	}
	p->in_len = (size_t)(end - at);
	memmove(p->in, at, p->in_len);
	if (p->in_len == IN_CAP)
		return -1; /* a head larger than the buffer */
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
		fprintf(stderr, "usage: floor302 PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN); /* a write to a closed peer fails with EPIPE */
	int one = 1;
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, 4096) != 0) {
		perror("floor302: listen");
		return 1;
	}
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[256];
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev) != 0) {
		perror("floor302: epoll");
		return 1;
	}
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0 && errno != EINTR) {
			perror("floor302: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct peer *p = evs[i].data.ptr;
			if (p == NULL) { /* the listener */
				int fd;
				while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					struct peer *np = malloc(sizeof(*np));
					if (np == NULL) {
						close(fd);
						continue;
					}
					np->fd = fd;
					np->in_len = np->out_len = np->out_pos = 0;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					struct epoll_event e = {.events = EPOLLIN, .data.ptr = np};
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0)
						peer_close(np);
				}
				continue;
			}
			/* A peer with answers queued waits for room (EPOLLOUT)
			 * and reads nothing more until they are gone. */
			int waiting = p->out_len > 0;
			if (!waiting && peer_read(p) != 0) {
				peer_close(p);
				continue;
			}
			int w = peer_write(p);
			struct epoll_event e = {.events = w == 1 ? EPOLLOUT : EPOLLIN, .data.ptr = p};
			if (w < 0 || ((w == 1) != waiting && epoll_ctl(ep, EPOLL_CTL_MOD, p->fd, &e) != 0))
				peer_close(p);
		}
	}
}
