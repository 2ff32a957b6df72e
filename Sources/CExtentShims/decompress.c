#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include "CExtentShims.h"

int extentdb_inflate_raw(const void *in, size_t in_len, void *out, size_t out_len) {
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    if (inflateInit2(&stream, -12) != Z_OK) return -1;
    stream.next_in = (Bytef *)in;
    stream.avail_in = (uInt)in_len;
    stream.next_out = (Bytef *)out;
    stream.avail_out = (uInt)out_len;
    int status = inflate(&stream, Z_FINISH);
    size_t produced = out_len - stream.avail_out;
    inflateEnd(&stream);
    /* qemu accepts Z_STREAM_END, or Z_BUF_ERROR with a full output buffer. */
    if ((status == Z_STREAM_END || status == Z_BUF_ERROR || status == Z_OK) && produced == out_len) return 0;
    return -1;
}

int extentdb_zstd_decompress(const void *in, size_t in_len, void *out, size_t out_len) {
    ZSTD_DCtx *context = ZSTD_createDCtx();
    if (context == NULL) return -1;
    ZSTD_inBuffer input = { in, in_len, 0 };
    ZSTD_outBuffer output = { out, out_len, 0 };
    int result = 0;
    while (output.pos < output.size) {
        size_t before_in = input.pos, before_out = output.pos;
        size_t status = ZSTD_decompressStream(context, &output, &input);
        if (ZSTD_isError(status)) { result = -1; break; }
        if (input.pos == before_in && output.pos == before_out) { result = -1; break; }
        if (status == 0 && output.pos < output.size && input.pos >= input.size) { result = -1; break; }
    }
    ZSTD_freeDCtx(context);
    return result;
}
