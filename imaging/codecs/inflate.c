// Inflating a PNG's image data with zlib (see imaging/png.go). Built by
// CMake into build/libmadclip_codecs.a together with zlib itself, whose
// symbols are then made local (see CMakeLists.txt).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codecs.h"

// mc_inflate_new returns a zlib stream ready to inflate, or NULL.
mc_inflater *mc_inflate_new(void) {
	z_stream *z = calloc(1, sizeof(z_stream));
	if (z == NULL) return NULL;
	if (inflateInit(z) != Z_OK) {
		free(z);
		return NULL;
	}
	return z;
}

void mc_inflate_free(mc_inflater *z) {
	inflateEnd(z);
	free(z);
}

// mc_inflate feeds n bytes of in to the stream, writing what they inflate
// to at out + *produced, up to cap bytes in all. It returns 1 when the
// stream ended (the bytes of in after its end go unread), 0 when it took all of in
// and wants more, 2 when out is full and the stream has not ended, and -1
// on corrupt data (msg, up to msglen bytes). It keeps no pointer to in or
// out after it returns.
int mc_inflate(mc_inflater *z, const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *produced,
               char *msg, size_t msglen) {
	int ret = Z_OK;
	size_t left = n;
	z->next_in = (Bytef *)in;
	for (;;) {
		if (*produced == cap) {
			ret = Z_BUF_ERROR;
			break;
		}
		size_t room = cap - *produced;
		uInt take_in = left > UINT32_MAX ? UINT32_MAX : (uInt)left;
		uInt take_out = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
		z->avail_in = take_in;
		z->next_out = out + *produced;
		z->avail_out = take_out;
		ret = inflate(z, Z_NO_FLUSH);
		left -= take_in - z->avail_in;
		*produced += take_out - z->avail_out;
		if (ret != Z_OK) break;
		if (left == 0 && z->avail_in == 0 && z->avail_out != 0) break;
	}
	z->next_in = NULL;
	z->next_out = NULL;
	if (ret == Z_STREAM_END) return 1;
	if (ret == Z_OK) return 0;
	if (ret == Z_BUF_ERROR) return *produced == cap ? 2 : 0;
	snprintf(msg, msglen, "%s", ret == Z_NEED_DICT ? "needs a preset dictionary" : z->msg != NULL ? z->msg : "inflate failed");
	return -1;
}
