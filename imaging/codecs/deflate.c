// Compressing a PNG's image data with zlib (see imaging/pngwrite.go). Built
// with the other codecs into build/libmadclip_codecs.a.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "codecs.h"

// mc_deflate_new returns a zlib stream ready to compress at level, or NULL.
mc_deflater *mc_deflate_new(int level) {
	z_stream *z = calloc(1, sizeof(z_stream));
	if (z == NULL) return NULL;
	if (deflateInit(z, level) != Z_OK) {
		free(z);
		return NULL;
	}
	return z;
}

void mc_deflate_free(mc_deflater *z) {
	deflateEnd(z);
	free(z);
}

// mc_deflate feeds the n bytes of in to the stream (finish: they are the
// last) and writes what it can of the compressed stream to out, cap bytes
// (n and cap at most 4 GiB - 1). It sets how much of in it took and how much
// of out it wrote, and returns 1 once the stream has ended (finish, and
// every byte written), 0 when it needs more room or more input, -1 with a
// message in msg on an error. It keeps no pointer to in or out.
int mc_deflate(mc_deflater *z, const uint8_t *in, size_t n, int finish, uint8_t *out, size_t cap, size_t *consumed,
               size_t *produced, char *msg, size_t msglen) {
	if (n > UINT32_MAX || cap > UINT32_MAX) {
		snprintf(msg, msglen, "a block over 4 GiB");
		return -1;
	}
	z->next_in = (Bytef *)in;
	z->avail_in = (uInt)n;
	z->next_out = out;
	z->avail_out = (uInt)cap;
	int ret = deflate(z, finish ? Z_FINISH : Z_NO_FLUSH);
	*consumed = n - z->avail_in;
	*produced = cap - z->avail_out;
	z->next_in = NULL;
	z->next_out = NULL;
	if (ret == Z_STREAM_END) return 1;
	if (ret == Z_OK || ret == Z_BUF_ERROR) return 0; // Z_BUF_ERROR: no room to progress, not an error
	snprintf(msg, msglen, "%s", z->msg != NULL ? z->msg : "deflate failed");
	return -1;
}
