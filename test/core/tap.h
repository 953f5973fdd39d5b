/*
 * tap.h - tiny header-only TAP helpers for the core unit tests.
 *   tap_ok(cond, fmt, ...)   prints "ok N - desc" / "not ok N - desc"
 *   tap_diag(fmt, ...)       prints "# ..."
 *   return tap_done();       prints the plan "1..N", returns 0 if all passed
 */
#ifndef T4R_TAP_H
#define T4R_TAP_H
#include <stdarg.h>
#include <stdio.h>

static int	tap_n_ = 0;
static int	tap_failed_ = 0;

static inline int
tap_ok(int cond, const char *fmt, ...)
{
	va_list		ap;

	tap_n_++;
	if (!cond)
		tap_failed_++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n_);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

static inline void
tap_diag(const char *fmt, ...)
{
	va_list		ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_n_);
	if (tap_failed_)
		printf("# %d of %d tests failed\n", tap_failed_, tap_n_);
	fflush(stdout);
	return tap_failed_ ? 1 : 0;
}
#endif
