/*
 * strbuf.h - a growable, NUL-terminated string buffer for the JSON writers
 * of the core (internal).  On allocation failure `failed` is set and later
 * appends do nothing; the caller checks it once at the end.
 */
#ifndef T4R_STRBUF_H
#define T4R_STRBUF_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sbuf
{
	char	   *p;
	size_t		len,
				cap;
	int			failed;
} sbuf;

static inline void
sb_put(sbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap)
	{
		size_t		ncap = b->cap ? b->cap : 256;
		char	   *np;

		while (b->len + n + 1 > ncap)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (np == NULL)
		{
			b->failed = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static inline void
sb_str(sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* a JSON string literal */
static inline void
sb_jstr(sbuf *b, const char *s)
{
	const unsigned char *u = (const unsigned char *) s;
	char		tmp[8];

	sb_put(b, "\"", 1);
	for (; *u; u++)
	{
		if (*u == '"' || *u == '\\')
		{
			tmp[0] = '\\';
			tmp[1] = (char) *u;
			sb_put(b, tmp, 2);
		}
		else if (*u < 0x20)
		{
			snprintf(tmp, sizeof(tmp), "\\u%04x", *u);
			sb_put(b, tmp, 6);
		}
		else
			sb_put(b, (const char *) u, 1);
	}
	sb_put(b, "\"", 1);
}

#endif
