// COCO run-length encoding of (n, h, w) masks, column-major, first run = background.
//
// A mask's counts are the differences of its "edges": 0, (0 again when the first pixel is set, giving
// the empty leading background run), every column-major index k where pixel k differs from pixel k-1,
// and h*w. Work is split into segments of SEG rows of one column of one mask; segments are numbered
// (mask, column, segment), which is column-major order, so their edge lists concatenate in order.
// Threads take segments with the column fastest, so a warp reads 32 neighbouring bytes of a row.
//   rle_count_edges     -> edges per segment; the caller takes an exclusive cumsum on device
//   rle_write_edges     -> each segment writes its edges at its offset, in order
//   rle_edges_to_counts -> counts[i] = edges[i+1] - edges[i] (entries straddling two masks are unused)
// Only the counts (and each mask's start) are copied to the host.

#define SEG 64  // rows per segment; must match _RLE_SEGMENT_ROWS in sam3_ros/kernels/cuda_ops.py

struct Segment {
    const unsigned char* mask;  // this mask's first pixel
    long long index;            // (mask * w + x) * segments + s: position in column-major order
    int x, y0, y1;              // column, rows [y0, y1)
    bool first, last;           // holds the mask's first pixel / last pixel
};

__device__ __forceinline__ Segment segment(const unsigned char* masks, long long t, int h, int w, int segments) {
    // t enumerates (mask, s, x) with x fastest; index is the (mask, x, s) order of the edge lists.
    Segment g;
    g.x = (int)(t % w);
    const int s = (int)((t / w) % segments);
    const long long mask = t / ((long long)w * segments);
    g.mask = masks + mask * h * (long long)w;
    g.index = (mask * w + g.x) * segments + s;
    g.y0 = s * SEG;
    g.y1 = min(h, g.y0 + SEG);
    g.first = g.x == 0 && s == 0;
    g.last = g.x == w - 1 && s == segments - 1;
    return g;
}

__device__ __forceinline__ bool pixel(const unsigned char* mask, int w, int y, int x) {
    return mask[(long long)y * w + x] != 0;
}

// The pixel before row y0 of column x in column-major order (for the mask's first pixel: itself).
__device__ __forceinline__ bool before(const Segment& g, int h, int w) {
    if (g.y0 > 0) return pixel(g.mask, w, g.y0 - 1, g.x);
    return g.x > 0 ? pixel(g.mask, w, h - 1, g.x - 1) : pixel(g.mask, w, 0, 0);
}

// masks: (n, h, w) bytes (torch.bool storage); seg_edges: (n, w, segments) int32 out, segments = ceil(h / SEG).
extern "C" __global__ void rle_count_edges(const unsigned char* __restrict__ masks, int n, int h, int w,
                                           int segments, int* __restrict__ seg_edges) {
    const long long total = (long long)n * w * segments;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < total;
         t += (long long)gridDim.x * blockDim.x) {
        const Segment g = segment(masks, t, h, w, segments);
        bool prev = before(g, h, w);
        int edges = g.first ? 1 + prev : 0;  // leading 0, twice when the first pixel is set
#pragma unroll 8
        for (int y = g.y0; y < g.y1; ++y) {
            const bool v = pixel(g.mask, w, y, g.x);
            edges += v != prev;
            prev = v;
        }
        seg_edges[g.index] = edges + g.last;  // the closing h*w
    }
}

// seg_offsets: (n, w, segments) int64, exclusive prefix sum of seg_edges; edges: int32 out.
extern "C" __global__ void rle_write_edges(const unsigned char* __restrict__ masks, int n, int h, int w,
                                           int segments, const long long* __restrict__ seg_offsets,
                                           int* __restrict__ edges) {
    const long long total = (long long)n * w * segments;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < total;
         t += (long long)gridDim.x * blockDim.x) {
        const Segment g = segment(masks, t, h, w, segments);
        int* out = edges + seg_offsets[g.index];
        bool prev = before(g, h, w);
        if (g.first) {
            *out++ = 0;
            if (prev) *out++ = 0;
        }
        const int column_start = g.x * h;
#pragma unroll 8
        for (int y = g.y0; y < g.y1; ++y) {
            const bool v = pixel(g.mask, w, y, g.x);
            if (v != prev) *out++ = column_start + y;
            prev = v;
        }
        if (g.last) *out = h * w;
    }
}

// edges: (total,) int32; counts: (total,) int32 out, last entry unused.
extern "C" __global__ void rle_edges_to_counts(const int* __restrict__ edges, long long total,
                                               int* __restrict__ counts) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i + 1 < total;
         i += (long long)gridDim.x * blockDim.x)
        counts[i] = edges[i + 1] - edges[i];
}
