/* SPDX-License-Identifier: MIT */
/* examples/blog/client.c — a tiny blocking HTTP client for examples/demo.sh,
 * so the demo needs no curl.  Not dorm code: plain sockets, one request.
 *
 *   client PORT METHOD PATH [BODY]   prints "STATUS BODY" on one line
 *   client PORT --events N PATH      prints the first N server-sent events
 *                                    ("event: data" per line), after a
 *                                    "(subscribed)" line once the stream is
 *                                    open, then exits
 *
 * It speaks HTTP/1.0, so the server closes the connection after the answer
 * and sends a stream unchunked: reading until EOF is enough.  Gives up
 * after 10 seconds of silence (exit 1).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static char buf[1 << 20];
static size_t len;

/* Read more into buf; 0 at EOF or timeout. */
static int fill(int fd) {
  if (len + 1 >= sizeof buf) return 0;
  ssize_t n = recv(fd, buf + len, sizeof buf - len - 1, 0);
  if (n <= 0) return 0;
  len += (size_t)n;
  buf[len] = '\0';
  return 1;
}

int main(int argc, char **argv) {
  int events = argc == 5 && !strcmp(argv[2], "--events") ? atoi(argv[3]) : 0;
  if (argc < 4 || (argc > 5) || (events <= 0 && argv[2][0] == '-')) {
    fprintf(stderr,
            "usage: client PORT METHOD PATH [BODY]\n"
            "       client PORT --events N PATH\n");
    return 2;
  }
  const char *method = events ? "GET" : argv[2];
  const char *path = events ? argv[4] : argv[3];
  const char *body = !events && argc == 5 ? argv[4] : "";

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)atoi(argv[1])),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
    perror("client: connect");
    return 1;
  }
  char head[1024];
  int n = snprintf(head, sizeof head,
                   "%s %s HTTP/1.0\r\nHost: localhost\r\n"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                   "\r\n",
                   method, path, strlen(body));
  if (send(fd, head, (size_t)n, 0) != n ||
      send(fd, body, strlen(body), 0) != (ssize_t)strlen(body))
    return 1;

  char *start;
  while (!(start = strstr(buf, "\r\n\r\n")))
    if (!fill(fd)) return 1;
  int status = atoi(strchr(buf, ' ') + 1);
  start += 4;
  if (!events) { /* the whole body, up to EOF */
    while (fill(fd)) {
    }
    start = strstr(buf, "\r\n\r\n") + 4;
    printf("%d %s\n", status, start);
    return 0;
  }
  /* Events: messages end with a blank line; print "event: data" pairs. */
  size_t at = (size_t)(start - buf);
  for (int seen = 0; seen < events;) {
    char *end = strstr(buf + at, "\n\n");
    if (!end) {
      if (!fill(fd)) return 1;
      continue;
    }
    *end = '\0';
    char *msg = buf + at, *ev = strstr(msg, "event: "),
         *data = strstr(msg, "data: ");
    if (!strcmp(msg, ": connected")) printf("(subscribed)\n");
    if (ev && data) {
      *strchr(ev, '\n') = '\0';
      printf("%s %s\n", ev + 7, data + 6);
      seen++;
    }
    fflush(stdout);
    at = (size_t)(end - buf) + 2;
  }
  close(fd);
  return 0;
}
