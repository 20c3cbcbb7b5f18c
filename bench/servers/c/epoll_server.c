/* epoll_server.c: the benchmark's limit, a minimal hand-written C server.
 *
 *   cc -O2 -o epoll_server epoll_server.c
 *   epoll_server ECHO_PORT HTTP_PORT
 *
 * One thread, one edge-triggered epoll instance, every socket registered once
 * for both directions. Echo on ECHO_PORT (what was read is written back) and
 * an HTTP/1.1 keep-alive hello world on HTTP_PORT (every complete request in
 * what was read is answered, pipelining included; "Connection: close" gets
 * its answer and then the close), both on 127.0.0.1: the same work as the
 * other servers of the harness (bench/README.md).
 *
 * The read buffer is one static buffer shared by every connection; a
 * connection allocates only when the kernel does not take all of an answer
 * (its unsent rest) or when a request arrives in pieces (the part read).
 * That is the least a server can hold per idle connection.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BACKLOG 1024
#define MAX_EVENTS 1024
#define MAX_HEADER (16 * 1024)

static const char KEEP[] =
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";
static const char CLOSE[] =
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
	"Connection: close\r\n\r\nHello, world!";

struct conn {
	int fd;
	uint8_t http;     /* an HTTP connection (else echo) */
	uint8_t closing;  /* close once the unsent rest is out */
	uint32_t out_len; /* unsent rest of an answer, in out */
	uint32_t in_len;  /* an incomplete request, in in */
	char *out;
	char *in;
};

/* Listeners are told apart from connections by these two addresses. */
static char ECHO_LISTENER, HTTP_LISTENER;

/* Every read goes here; at most 16 KiB per recv, as the other servers read
 * into their 16 KiB per-connection buffers (the same syscalls per byte). */
static char rbuf[16 * 1024];
static char wbuf[64 * 1024 + 4]; /* answers to pipelined requests */
static int ep;

static void conn_close(struct conn *c)
{
	close(c->fd); /* also leaves the epoll set */
	free(c->out);
	free(c->in);
	free(c);
}

/* Writes what the kernel takes; keeps the rest. Returns -1 on error. */
static int conn_write(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR) continue;
			if (errno != EAGAIN) return -1;
			char *o = realloc(c->out, c->out_len + n);
			if (!o) return -1;
			memcpy(o + c->out_len, p, n);
			c->out = o;
			c->out_len += n;
			return 0;
		}
		p += w;
		n -= w;
	}
	return 0;
}

/* Sends the unsent rest: 1 when all of it is out, 0 when some is left. */
static int conn_flush(struct conn *c)
{
	uint32_t done = 0;
	while (done < c->out_len) {
		ssize_t w = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR) continue;
			if (errno != EAGAIN) return -1;
			break;
		}
		done += w;
	}
	if (done == c->out_len) {
		free(c->out);
		c->out = NULL;
		c->out_len = 0;
		return 1;
	}
	memmove(c->out, c->out + done, c->out_len - done);
	c->out_len -= done;
	return 0;
}

static int wants_close(const char *h, size_t n)
{
	static const char C[] = "\nconnection: close";
	size_t k = sizeof C - 1;
	for (size_t i = 0; i + k <= n; i++)
		if ((h[i] == '\n') && strncasecmp(h + i, C, k) == 0) return 1;
	return 0;
}

/* Answers the complete requests in p[0..n): returns the bytes used, sets
 * *close when one asked for it; -1 on a write error. */
static long http_answer(struct conn *c, const char *p, size_t n, int *close_)
{
	size_t used = 0, out = 0;
	*close_ = 0;
	for (;;) {
		const char *e = memmem(p + used, n - used, "\r\n\r\n", 4);
		if (!e) break;
		size_t end = e - p + 4;
		int cl = wants_close(p + used, end - used);
		const char *a = cl ? CLOSE : KEEP;
		size_t alen = cl ? sizeof CLOSE - 1 : sizeof KEEP - 1;
		if (out + alen > sizeof wbuf) {
			if (conn_write(c, wbuf, out) < 0) return -1;
			out = 0;
		}
		memcpy(wbuf + out, a, alen);
		out += alen;
		used = end;
		if (cl) {
			*close_ = 1;
			break;
		}
	}
	if (out && conn_write(c, wbuf, out) < 0) return -1;
	return used;
}

/* Reads and serves until the socket is drained (or the connection has to
 * wait for its unsent rest). Returns -1 when the connection is done. */
static int conn_read(struct conn *c, int hup)
{
	for (;;) {
		if (c->out_len) return 0; /* back-pressure: wait for EPOLLOUT */
		ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
		if (n == 0) return -1;
		if (n < 0) {
			if (errno == EINTR) continue;
			return errno == EAGAIN ? 0 : -1;
		}
		if (!c->http) {
			if (conn_write(c, rbuf, n) < 0) return -1;
		} else {
			const char *p = rbuf;
			size_t len = n;
			if (c->in_len) { /* the start of a request came earlier */
				char *in = realloc(c->in, c->in_len + n);
				if (!in) return -1;
				memcpy(in + c->in_len, rbuf, n);
				c->in = in;
				c->in_len += n;
				p = in;
				len = c->in_len;
			}
			int cl;
			long used = http_answer(c, p, len, &cl);
			if (used < 0) return -1;
			if (cl) {
				if (!c->out_len) return -1;
				c->closing = 1;
				return 0;
			}
			size_t rest = len - used;
			if (rest >= MAX_HEADER) return -1;
			if (rest == 0) {
				free(c->in);
				c->in = NULL;
				c->in_len = 0;
			} else if (p == c->in) {
				memmove(c->in, c->in + used, rest);
				c->in_len = rest;
			} else {
				char *in = malloc(rest);
				if (!in) return -1;
				memcpy(in, p + used, rest);
				free(c->in);
				c->in = in;
				c->in_len = rest;
			}
		}
		/* A short read drained the socket: data that comes later brings a
		 * new edge. After a hang-up, read on to the end of the stream. */
		if ((size_t)n < sizeof rbuf && !hup) return 0;
	}
}

static int listen_on(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, BACKLOG) < 0) {
		perror("listen");
		exit(1);
	}
	return fd;
}

static void accept_all(int lfd, int http)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) continue;
			if (errno != EAGAIN) perror("accept");
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->http = http;
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) conn_close(c);
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s ECHO_PORT HTTP_PORT\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	ep = epoll_create1(EPOLL_CLOEXEC);
	int lfd[2] = {listen_on(atoi(argv[1])), listen_on(atoi(argv[2]))};
	char *tag[2] = {&ECHO_LISTENER, &HTTP_LISTENER};
	for (int i = 0; i < 2; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag[i]};
		epoll_ctl(ep, EPOLL_CTL_ADD, lfd[i], &ev);
	}
	struct epoll_event evs[MAX_EVENTS];
	for (;;) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR) continue;
			perror("epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &ECHO_LISTENER || p == &HTTP_LISTENER) {
				accept_all(p == &ECHO_LISTENER ? lfd[0] : lfd[1], p == &HTTP_LISTENER);
				continue;
			}
			struct conn *c = p;
			uint32_t e = evs[i].events;
			int r = 0;
			if (c->out_len && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
				r = conn_flush(c);
				if (r == 1 && c->closing) r = -1;
			}
			if (r >= 0 && !c->closing)
				r = conn_read(c, (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
			if (r < 0) conn_close(c);
		}
	}
}
