/*
 * err.c - t4r_set_err and t4r_set_err_ascii (err.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include "err.h"

void
t4r_set_err(char *err, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void
t4r_set_err_ascii(char *err, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (err && errlen > 0)
	{
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
		for (char *s = err; *s; s++)
			if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
				*s = '?';
	}
}
