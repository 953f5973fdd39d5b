/*
 * err.h - the core's error messages: every public function that can fail
 * takes (char *err, size_t errlen) and fills it with t4r_set_err.
 */
#ifndef T4R_ERR_H
#define T4R_ERR_H

#include <stddef.h>

/* vsnprintf into err (nothing when err is NULL or errlen is 0) */
void		t4r_set_err(char *err, size_t errlen, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/* the same, then every byte outside printable ASCII replaced by '?': for
 * messages that quote names and values from untrusted input (a file) and
 * may be cut at any byte, so that callers can pass them on */
void		t4r_set_err_ascii(char *err, size_t errlen, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

#endif
