// The C side of madclip's image codecs: zlib inflating and deflating a PNG's
// image data, and libjpeg-turbo decoding a JPEG. Both libraries are linked into
// build/libmadclip_codecs.a with only these functions left global, so that
// the executable neither exports nor takes the place of the shared zlib and
// libjpeg that libtorch's dependencies load (CMakeLists.txt).
#ifndef MADCLIP_CODECS_H
#define MADCLIP_CODECS_H

#include <stddef.h>
#include <stdint.h>

// The longest message the functions below write, with its terminating NUL.
#define MC_MSG_MAX 256

// A zlib inflate stream (zlib's z_stream).
typedef struct z_stream_s mc_inflater;

mc_inflater *mc_inflate_new(void);
void mc_inflate_free(mc_inflater *z);
int mc_inflate(mc_inflater *z, const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *produced,
               char *msg, size_t msglen);

// A zlib deflate stream (zlib's z_stream).
typedef struct z_stream_s mc_deflater;

mc_deflater *mc_deflate_new(int level);
void mc_deflate_free(mc_deflater *z);
int mc_deflate(mc_deflater *z, const uint8_t *in, size_t n, int finish, uint8_t *out, size_t cap, size_t *consumed,
               size_t *produced, char *msg, size_t msglen);

unsigned char *mc_jpeg_decode(const unsigned char *data, unsigned long n, unsigned long long maxpix, int accept_damaged,
                              int *w, int *h, int *comps, int *adobe, char *msg, size_t msglen);

#endif
