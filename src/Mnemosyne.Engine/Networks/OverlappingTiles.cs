using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// The tiling of diffusers' AutoencoderKL.tiled_decode and tiled_encode (v0.30.0): the input is cut into square tiles
/// of <c>tileSize</c> starting every <c>stride</c>, each tile is run alone, each result's first <c>blend</c> rows and
/// columns are blended linearly with the result above and the one to its left (in place and in order, so neighbours
/// are already blended when read), and the results are cropped to <c>keep</c> and joined.
/// </summary>
internal static class OverlappingTiles
{
    public static FloatTensor Run(FloatTensor x, int tileSize, int stride, int blend, int keep, Func<FloatTensor, FloatTensor> run)
    {
        int height = x.Shape[2], width = x.Shape[3];
        var rows = new List<List<FloatTensor>>();
        for (int i = 0; i < height; i += stride)
        {
            var row = new List<FloatTensor>();
            for (int j = 0; j < width; j += stride)
                row.Add(run(Crop(x, i, j, Math.Min(tileSize, height - i), Math.Min(tileSize, width - j))));
            rows.Add(row);
        }

        int batch = rows[0][0].Shape[0], channels = rows[0][0].Shape[1];
        int outHeight = rows.Sum(r => Math.Min(keep, r[0].Shape[2]));
        int outWidth = rows[0].Sum(t => Math.Min(keep, t.Shape[3]));
        var joined = new float[(long)batch * channels * outHeight * outWidth];
        int top = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            int left = 0;
            for (int j = 0; j < rows[i].Count; j++)
            {
                var tile = rows[i][j];
                if (i > 0) BlendVertically(rows[i - 1][j], tile, blend);
                if (j > 0) BlendHorizontally(rows[i][j - 1], tile, blend);
                Place(tile, joined, batch * channels, outWidth, top, left, Math.Min(keep, tile.Shape[2]), Math.Min(keep, tile.Shape[3]));
                left += Math.Min(keep, tile.Shape[3]);
            }
            top += Math.Min(keep, rows[i][0].Shape[2]);
        }
        return new FloatTensor(joined, [batch, channels, outHeight, outWidth]);
    }

    private static FloatTensor Crop(FloatTensor x, int top, int left, int height, int width)
    {
        int planes = x.Shape[0] * x.Shape[1], sourceHeight = x.Shape[2], sourceWidth = x.Shape[3];
        var data = new float[planes * height * width];
        for (int p = 0; p < planes; p++)
            for (int y = 0; y < height; y++)
                Array.Copy(x.Data, ((long)p * sourceHeight + top + y) * sourceWidth + left, data, ((long)p * height + y) * width, width);
        return new FloatTensor(data, [x.Shape[0], x.Shape[1], height, width]);
    }

    /// <summary>
    /// blend_v: b's row y (y &lt; extent) becomes a's row (h_a − extent + y)·(1 − y/extent) + b's·(y/extent), the weights
    /// computed in double and applied in float32, as torch multiplies a float tensor by a Python float.
    /// </summary>
    private static void BlendVertically(FloatTensor a, FloatTensor b, int extent)
    {
        int planes = b.Shape[0] * b.Shape[1], heightA = a.Shape[2], heightB = b.Shape[2], width = b.Shape[3];
        extent = Math.Min(Math.Min(heightA, heightB), extent);
        for (int y = 0; y < extent; y++)
        {
            float fromA = (float)(1 - y / (double)extent), fromB = (float)(y / (double)extent);
            for (int p = 0; p < planes; p++)
            {
                int rowA = (p * heightA + heightA - extent + y) * width, rowB = (p * heightB + y) * width;
                for (int x = 0; x < width; x++) b.Data[rowB + x] = a.Data[rowA + x] * fromA + b.Data[rowB + x] * fromB;
            }
        }
    }

    /// <summary>blend_h: the same along columns, with the tile to the left.</summary>
    private static void BlendHorizontally(FloatTensor a, FloatTensor b, int extent)
    {
        int planes = b.Shape[0] * b.Shape[1], height = b.Shape[2], widthA = a.Shape[3], widthB = b.Shape[3];
        extent = Math.Min(Math.Min(widthA, widthB), extent);
        for (int x = 0; x < extent; x++)
        {
            float fromA = (float)(1 - x / (double)extent), fromB = (float)(x / (double)extent);
            for (int p = 0; p < planes; p++)
                for (int y = 0; y < height; y++)
                {
                    int rowA = (p * height + y) * widthA, rowB = (p * height + y) * widthB;
                    b.Data[rowB + x] = a.Data[rowA + widthA - extent + x] * fromA + b.Data[rowB + x] * fromB;
                }
        }
    }

    /// <summary>Copies the tile's top-left height × width into the picture at (top, left), plane by plane.</summary>
    private static void Place(FloatTensor tile, float[] image, int planes, int imageWidth, int top, int left, int height, int width)
    {
        int tileHeight = tile.Shape[2], tileWidth = tile.Shape[3];
        int imageHeight = image.Length / planes / imageWidth;
        for (int p = 0; p < planes; p++)
            for (int y = 0; y < height; y++)
                Array.Copy(tile.Data, ((long)p * tileHeight + y) * tileWidth, image, ((long)p * imageHeight + top + y) * imageWidth + left, width);
    }
}
