// Decoding a JPEG with libjpeg-turbo (see imaging/jpeg.go). Built by
// CMake into build/libmadclip_codecs.a together with libjpeg itself, whose
// symbols are then made local (see CMakeLists.txt).
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

#include "codecs.h"

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	char msg[JMSG_LENGTH_MAX];
	int truncated;
	int accept_damaged;
	int damaged;          // a warning that data was lost (first one in damage)
	char damage[JMSG_LENGTH_MAX];
} mc_jpeg_err;

static void mc_jpeg_error_exit(j_common_ptr cinfo) {
	mc_jpeg_err *e = (mc_jpeg_err *)cinfo->err;
	(*cinfo->err->format_message)(cinfo, e->msg);
	longjmp(e->jump, 1);
}

// Running out of data is a truncated image, as PIL reports it. Warnings
// that compressed data was lost or garbled (libjpeg then fills in flat
// grey and goes on, and so does PIL) make the image damaged, unless the
// caller accepts that. Other warnings (extraneous bytes before a marker, an
// unknown Adobe transform, a newer JFIF version, odd scan parameters that
// libjpeg decodes anyway) are ignored, as PIL ignores them: real files
// carry them.
static void mc_jpeg_emit(j_common_ptr cinfo, int level) {
	mc_jpeg_err *e = (mc_jpeg_err *)cinfo->err;
	if (level >= 0) {
		return;
	}
	switch (cinfo->err->msg_code) {
	case JWRN_JPEG_EOF:
		e->truncated = 1;
		break;
	case JWRN_HIT_MARKER:
	case JWRN_HUFF_BAD_CODE:
	case JWRN_ARITH_BAD_CODE:
	case JWRN_MUST_RESYNC:
		if (!e->accept_damaged && !e->damaged) {
			e->damaged = 1;
			(*cinfo->err->format_message)(cinfo, e->damage);
		}
		break;
	}
}

// A progressive JPEG may repeat scans without end, each one a pass over
// the whole image: a file of a few kilobytes can then take hours to decode.
// Real files have a dozen or so scans; MC_JPEG_MAX_SCANS is far beyond.
#define MC_JPEG_MAX_SCANS 1000

static void mc_jpeg_progress(j_common_ptr cinfo) {
	j_decompress_ptr d = (j_decompress_ptr)cinfo;
	if (d->input_scan_number > MC_JPEG_MAX_SCANS) {
		mc_jpeg_err *e = (mc_jpeg_err *)cinfo->err;
		snprintf(e->msg, sizeof e->msg, "a progressive JPEG with more than %d scans (a decoding bomb)", MC_JPEG_MAX_SCANS);
		longjmp(e->jump, 1);
	}
}

// mc_jpeg_decode decodes data into a malloc'd buffer of w*h*comps bytes
// (comps 1 for grey, 3 for RGB, 4 for CMYK; *adobe says whether an Adobe
// marker was seen). On failure it returns NULL with the message in msg.
unsigned char *mc_jpeg_decode(const unsigned char *data, unsigned long n, unsigned long long maxpix, int accept_damaged,
                              int *w, int *h, int *comps, int *adobe, char *msg, size_t msglen) {
	struct jpeg_decompress_struct cinfo;
	mc_jpeg_err err;
	unsigned char *volatile out = NULL;
	memset(&cinfo, 0, sizeof cinfo);
	memset(&err, 0, sizeof err);
	cinfo.err = jpeg_std_error(&err.pub);
	err.pub.error_exit = mc_jpeg_error_exit;
	err.pub.emit_message = mc_jpeg_emit;
	err.accept_damaged = accept_damaged;
	if (setjmp(err.jump)) {
		snprintf(msg, msglen, "%s", err.msg);
		jpeg_destroy_decompress(&cinfo);
		free(out);
		return NULL;
	}
	jpeg_create_decompress(&cinfo);
	struct jpeg_progress_mgr progress = {.progress_monitor = mc_jpeg_progress};
	cinfo.progress = &progress;
	jpeg_mem_src(&cinfo, data, n);
	jpeg_read_header(&cinfo, TRUE);
	if ((unsigned long long)cinfo.image_width * cinfo.image_height > maxpix) {
		snprintf(msg, msglen, "the image claims %u×%u pixels, over the limit of %llu (raise it with --max-pixels)",
		         cinfo.image_width, cinfo.image_height, maxpix);
		jpeg_destroy_decompress(&cinfo);
		return NULL;
	}
	switch (cinfo.num_components) {
	case 1: cinfo.out_color_space = JCS_GRAYSCALE; break;
	case 3: cinfo.out_color_space = JCS_RGB; break;
	case 4: cinfo.out_color_space = JCS_CMYK; break;
	default:
		snprintf(msg, msglen, "JPEG with %d colour components", cinfo.num_components);
		jpeg_destroy_decompress(&cinfo);
		return NULL;
	}
	jpeg_start_decompress(&cinfo);
	size_t stride = (size_t)cinfo.output_width * cinfo.output_components;
	out = malloc(stride * cinfo.output_height);
	if (out == NULL) {
		snprintf(msg, msglen, "out of memory for a %ux%u JPEG", cinfo.output_width, cinfo.output_height);
		jpeg_destroy_decompress(&cinfo);
		return NULL;
	}
	while (cinfo.output_scanline < cinfo.output_height) {
		JSAMPROW row = out + stride * cinfo.output_scanline;
		jpeg_read_scanlines(&cinfo, &row, 1);
		if (err.truncated || err.damaged) {
			break;
		}
	}
	if (!err.truncated && !err.damaged) {
		// The rest of the file, up to EOI: a file that ends without it is
		// truncated, as PIL says.
		jpeg_finish_decompress(&cinfo);
	}
	if (err.truncated || err.damaged) {
		if (err.truncated) {
			snprintf(msg, msglen, "truncated image: the JPEG data ends early");
		} else {
			snprintf(msg, msglen, "damaged JPEG (%s); --damaged-jpeg decodes it anyway, as PIL does", err.damage);
		}
		jpeg_destroy_decompress(&cinfo);
		free(out);
		return NULL;
	}
	*w = cinfo.output_width;
	*h = cinfo.output_height;
	*comps = cinfo.output_components;
	*adobe = cinfo.saw_Adobe_marker;
	jpeg_destroy_decompress(&cinfo);
	return out;
}
