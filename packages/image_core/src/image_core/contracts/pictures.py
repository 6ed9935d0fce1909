"""Photo-like test images built with the standard library only (no Pillow in the core).

Flat colours compress to almost nothing and hide resampling and size bugs, so the codec
suite feeds gradients with noise: a PNG made here, and one small JPEG (made once with
Pillow, quality 70) kept as base64 because the standard library cannot encode JPEG.
"""

from __future__ import annotations

import base64
import functools
import random
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PHOTO_JPEG_SIZE = (240, 160)
PHOTO_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAoHBwgHBgoICAgLCgoLDhgQDg0NDh0VFhEYIx8lJCIfIiEmKzcvJik0"
    "KSEiMEExNDk7Pj4+JS5ESUM8SDc9Pjv/2wBDAQoLCw4NDhwQEBw7KCIoOzs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7"
    "Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozv/wAARCACgAPADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
    "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
    "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
    "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
    "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
    "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
    "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
    "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDyhVycAZPTrQPmz0OO/SpsY479/p1pVBGPl6dATX1/McykNVcD"
    "OPfFKuAvJwKeowo44z1Pp2pyod2QcEHFHMbRkNAGPQ46etORSRgnDdhT1TYCQnAH1p6r34b19qOY3jIYEJxwQPzp"
    "eOQDg9alRMYPU54PalVMAAnnGMUuY2jIjGCSWOP6U/Zg7ckex9aeingMMegxSquXxzgnsMZo5jeMgCsByCPelVd2"
    "eo7YFPCk89CT1HQU4qzEcFePqaOY2jIYobDZ4I68U8oVIGQMjpmngEg9MDkjH86dsB4JPI47gUcxtGRGoyuMZwee"
    "KeN2OhOTn1FP25zk/L0H507YcLycHjDdqOY3jIZt6Z7+9Ox0AH4+tP2FmC9RnOakCEDayDd0AHSjmNoyIgp5ABY5"
    "64p4Uj25xk08IDkAde+3vShRkNjj06f0pcxvGQ3YTweuOBTsAAZYdOPWn7NgwDj/ABpyjBJAGf6Yo5jaMiNc59Oe"
    "T0qRVI4Gemc+v0p4Uhsrnacdv5U/J/hB579qOY3jIYASeMlSc9aXbgAnjPNSbeee3JFPKdMYx0o5jaMiNRzwAw6f"
    "WnKvzKMY56CpNvVv59j6UoBBIyAOlHMbxkMC+mOenPA7U8DPIXI6U7buzk8etSBMAngg980cxspHBKAecYDcHHpT"
    "/LIY89OcnoKkCAZBwuRzSquG4zkjnNYcx+OqREqA9W9v8PengMOgPUcCpCq52naABkEdxSqnO0nBB60cxtGQ3y9w"
    "weOOeOtOCtnOPXPGacFJIHReo/8ArVIi7RjaM9Rg5o5jeMhgTaTk4z07/wCe1KE6A4FPCMDnHHcc8f5xT9oDAkgH"
    "0zntRzG0ZEaoPvEZ5yCeOM1II/nzn8Sc07Bw2OV9aeFLYBPIPbtS5jaMhgBxyAQxOc9qVYypJLZ9RipAgbAGAMc0"
    "9FIG4nvk0cxvGRGqbFzjIIx6/wCRTwvX5Rle3elAbqMgdCRzmpNny7Tk9zzRzG0ZDTGMDI47A0pXHLLz1z1qRUI+"
    "ZSABwc0oTgndyO9HMbxkM2Hcc87fQ07B49cE4/lUu3phfmJx0xTkHfHHpijmNoyGFNuc5HPOKdtIIwDjPWnrEVwo"
    "6deeaVV7dCRnjkmjmN4yG7Mg8cMM8mnYLIvHT86f5fzYXcc8gjt705VIQ4zjPQ88UcxtGQzHYZyD3p2M5OzNSBR6"
    "YOCcjjinCLkscDIOcUuY3jIjAAHI/EjIp2zHUnHqT+tS7BtX5scDB6U7y8gDHrjJzRzG0ZDQjAkd8HFCoSW+X6Zp"
    "6xgls9uvtUq9eCeB2HWjmN4yIipJB3dD2pwTAxjGPU9Kk2c/dOBx7U/BHJHQ9c9qOY2UjgkQ8kj7vFOC547nkk84"
    "NSbMDcMcd6UjJyQDz2rDmPx1SGCMY3EAj35FPUYHI4H6U8YHTjHengYGSec8YAzRzG0ZEe04yAecc07YvHByOOhp"
    "4QgjHy5PpS7fuvjH40cxtGQxUxyBnnGMc1Io6AfMT+lOC4PoQOPenhOfunA6fSjmN4yGeW3oQMcY6UqqTww/3Qal"
    "Ubm55yOv8hT1X5/vDpkeh9aOY2jIj2cf3hj/ADmhRggsf61KEGcdTSopwQScZz1pcxvGQ0LvXcQR+X6UoUbTxnHo"
    "aeq/NnJYAZ4qQrjnb7g+1HMbRkRbCevr9BUmACdpHXI5p8fLEkjn2pVjAPzAAego5jeMhoVsFiMY7k05YjnnnPfP"
    "FShMk9+x54NKExxgc8UcxtGRHtycEcc5z2p4UhQOpHJI45p4XIxg4HA4p4j3AZHQ+maOY3jIiQAYZs4zxxTwhzuf"
    "BHrjP+etSBRnjODnHvS7ATgA4xyTzRzG0ZDFVQep4OB7Uu3kk84FSkMPm5PPT0pxQkZIIo5jaMiILtAYdcc4qUAF"
    "gQMgHP8AhxT9oDHqSTn6U4KBgkjAPpz60uY3jIjKYbn7p96eqBSSMZ45NPC5JY5GKdtPHIB6n/69HMbRkNVfvZwe"
    "aUJuyvde+akCMwPAYE9M07aMnJIJ96OY3UjgxHgk988dqcFAA56+vepCoC4zyBn8aeEUYyp549qw5j8dUiJRuznH"
    "OeAe1PAHTPJ5qTbuxkEZHQenc0oQ44xjHT8aOY2jIYAC4446kjj9KUqeOMY+YCpljGOOo4PpilSMbgV4HWjmNoyG"
    "bP3ZB6qM7acqc4IJP61IEIUAHHsBRtAJZVOTxRzG8ZDQgZt3T2Han4XsOQO/an7Vzzk96cqkKOTt7Hg//qo5jaMh"
    "qxFW6kY7Dv8AjRs6dD79vpUoj5IAAHY/WpNnBB4B680cxtGRAq/Ju6+4p6oSwPBPXtxTkQ+ny9j7VKBkHA5A47il"
    "zG8ZDPKHUn8RQq5Y7enQc1KiggYyfWlYEHJzjJwaOY2jIaIzsyFAHXnnilChVG4A59eakKFgB8u327U5UxnPP459"
    "qOY3jIZ5bBOUP0PSl8v5jz3J59Ov86lEeOoGeOhp2whdp5J4o5jaMhgQALjqR2pVXIxtycj8/enhCyjnnn/GpNpL"
    "Yx1PHH86OY3jIYqAO3zdegzShB8uR9KkwFXOMZ9KkxnPAOPzo5jaMiAAbMdO23pTwDtzjjtjmpSBjcSB6d6cEz0A"
    "GOnvS5jeMiIKMgYAXPWnmMnBJBPr1qTYpPOOP5U5QASefc460cxtGRGFyM4GT3AqQKAMjHqD/jShOOQePfp6c1IF"
    "DEDGAD0NHMbKRwe3AwenTINOC8ElMY7dKfsb1z+NPK5IIOOelYcx+OqQxAwCgcHj6UojAzj8eKkEeSDjgfrSqvzY"
    "28Hg+lHMbxkMjGTyO/5U9OD24GeOtPCg/MxIzzx+dO2DPQ5HJxRzG0ZDCpDDqfYmlCEZwcqDnpipFT5e4x09aeq5"
    "wR24AJo5jaMhgUHr9MD604KOe2e4qQDHIGB7Gnbdo29OPu+lHMbxkR7eAMY9ie1PCAZZs9PTpTwvI77iMU4L1+UY"
    "9AKOY2jIYoBIOdw+tLtJPBwe59akVOu0ZHUjFPVOcAnH8qOY3jIYqEgHIDZ6H/ClVSi56kHGBT09eo75p4jwn054"
    "HJpcxtGQwRgLx6YOBxTlUseORnn5qftIzt9OVJp4UZ9uen+f85o5jeMhuNzbQWB6+1KsfoCR6rT9nPpn2+tORdw5"
    "4GMD/wDXRzG0ZDVXGB6DHbilSPC42tgjtTxGV7ZI70/y8Nk5Jz69aOY3jIj6n3/+t708LtXOTx3xTwihTg/U54p2"
    "zb04+tHMbRkM2Z+6SAeck/yp4Hfdgn/PFOA2nhsnHbjNPCnJJPAOD+FLmN4yGBSDycKxyDTsHA/P8akK4U5HTHQ0"
    "4Dac7s8eg9aOY2jIjA3ODjHuf5U7b0wDx1z/AIU8QnPHAJqRYywzuwf85o5jZSOC24zj0604KQSCTnP3al2DGCMe"
    "46GlCfMwB69RWHMfjqkRqhAyM8jHSnrz1OcnpnpTwGCk7sE9t3P507YCxx2o5jaMiMA7ug6dakUbs8HH8RFPAGzG"
    "OoJNPxnkDIBzn3o5jeMiJVGOmOPw9qdtwB8o+oHNSiNdg46HrS7CxxjBz6ZPtRzG0ZDAM8DPTPuaUJgkbhgfrUgQ"
    "AccYHT8aeqEruJH0HH4UcxvGRHt4DOBn608pg53A/hTwpKjIyoyMZqQIQMLk0cxtGRH5ZbPTBb3pSp5LEHHc8EU9"
    "Y8ZDKenPtT0iUYPPHX/CjmN4yIwm09BxznrTjjdwSTjpjpUoXI5PPsDTuDg+vtS5jaMhiqO+DxjilUDBbBGP51Jt"
    "7kH+VPRASMY4/wAijmN4yIwnTcMjPHNP2KAqnt+v+c04Ic4Bz3GOlPVSQV2HnpRzG0ZDAvlhgckdzmlAAb72SB2F"
    "ShSeCOnr6ZpyJhVxjjvjpRzG0ZDQPm59vejZ8n8PpxzTwjAnbnp2p4Uk5HHpkfzo5jeMiJgPvDBPqealAJ45PGBg"
    "5z/nFOEZ4O3t6U4JkZYHPf39qOY2jIZgYBA46Gn7SGOTnPJx14pwjG3HY+3NSbSRnG4dvmpcxvGREibiMfjntTyC"
    "BnGPbNP247HAPB9KUKcDoe7UcxspHDBMKTjJzz3pQgB4Jx74xmn7ct6dqfsPPfHr1JrHmPx1SI9vAAz8voPxzSlc"
    "9F6DBwakCNngEg8gdKftATPOevPOKXMbRkMRcJxnJzjinYwoIDYPan7QWyRyfw4//VT1jyOR064FHMbxkR7QcdQc"
    "/XFOVOh44PXNSYUZGevOen+etOC7iB75zj/GjmNoyI9mSMsAQMnI5/OnbNxyG4A4p4U9MndjFSBBnjkA/j+dHMbR"
    "kMxnsT6Dp/npShcHkVIiHGcEnr2p2AR8q9D0o5jeMhhUE9SfbilGS3HIAwSKlVRt+XOevTFKE5yp6Dp0NHMbRkN2"
    "Z24DDnPSljUkngD04/zzTwoJznnHcZ/z1qQKc7SPXoelHMbxkRhTtG9RgcA9P1qRRnjHGOOCcUpQBSCOPWlCMp5z"
    "+P60uY2jIYUwSBkHOKlSMq2R0B6A0/Z1OMEdeKXYCcDjPr6UcxvGRGFwd3XB5PSpPKzuG7k8ZJ7U5V3Zxnd+gp6g"
    "9ux6n86OY2jIZ5bYweeMnjpSqmMnqM4yRUmwEYI5HUDtT8HBJIBzxj0o5jeMhu3k8c9sCkCYPBJPb0NSbRgjbnjj"
    "0AqTbleoyMc0cxtGREEyD3J6f5NP2gEDgDvn0p4UD5T0zgDin7Pfp0PbrRzG8ZDFUbv5UqqSvzAgDGMU9UGAQWz2"
    "96eIyBnOOPWjmNlI4MLnoAenWnRgMcEZI9BUmwjHydenenAYUjHQ9j+FYcx+OqRGQwAJHXqMc4qRVGd2QTnkmnbM"
    "gEYHfPoP/wBVPEeDjuDkHHajmNoyGAYUcYHTBFORCwIJw305FS7CWwFxnkc9cUm3ncOf9kdKXMbRkMRemeNw71Jz"
    "syByOAQKcqnJB655NP77jyfXOKOY3jIZjIxnDH1HNL5ZPKnJ7YHWpQoz938OtCxnZxycEUcxtGQxQTx17dOKftyT"
    "xxnPPWnBRjlsA9QKkVQMYUgnpijmN4yI1VeckdOtOCDHBAJHT0NSbf7xP0zTgoHyMRnFHMbRkM2YU9SW55608oMk"
    "gD2BHSnjrn9eo6CnjO8Fe/U4o5jeMiHBwAwyPy5p5TbwPoM1KFJXpnIznFL5YwcZPrnrilzG0ZDF+6DgqPWnBQxJ"
    "yfx5xTwvBz2FO8sE5IKZHHHSjmN4yEVQRknIxzzmnBSqr/Ex6HP+fWnKhJ9AOOBmlCheAAMjqTRzG0ZDUXoMY3Dv"
    "35p3lgAeoIHJNSheQAOQeaVVBHKgn+tHMbRkM2fLtH3e+fWnKo3cHjkYAHWn+WdvfOOtOEY4Oc89xxRzG8ZDQAMj"
    "PQenNKqnb1yfpzUhiGM56Uu0lctnJ6UcxtGQhQqAQCccH/Gl2HbjgDnp2qQqQc9eDSbAFxzkHOPejmN1I4UIMAdR"
    "1PHFSBCwAznnFP2A/d69SDnihVxk5DDjrWHMfjqkIVHcbgck+/0oKEkc/r1qVUxwRyDgdaeq9vfIIP8An/Jo5jaM"
    "iPBMYJxk9BjIzS7Pm+boT271KE5OMil27l5APbHr70cxtGQ1Ewgz0xjrTguGwMZHUetSAYPQbgf/ANVKUyACMZ/T"
    "60uY3jIjCAckdOo6ZpwHBBJ47fzqUI2cHOCemMZ4oCg9sE8k0cxtGQgTr2Hr3FAXHYcYx9akMakntjsP60/y8nB6"
    "Y7ijmN4yGBcMAVA9MGnhAG5HTNP2DcAR3zjilUcDOccZz0o5jaMhoTI53emB3pQnbHGTT8DYML+FPHp83496OY2j"
    "IaqbmHUFucGlEZJz971zxT9n7zJ+pIFO25GcnAPrmjmN4yGbCF6fMT1z/jTlBGM+vTvmpQgDZHB6/ShUwD8oz6Ed"
    "aXMbRkNx3x7/ACnFPRQRtQc/Tj/PNPVc8AH8uKeqEDO7HHFHMbxkQlVbkYAP6U8IQM98ZzipVXaOme/UU7AyvfIz"
    "6n/P+FHMbRkMC7eBwerfWlCENjGfXipFUZ4OcjNOC8YOD6HOKOY3jIZjA+9xt7UqpuByT3PPcZqRBlgRjk+nb0p6"
    "ojHkDP8AOjmNoyGKnyjnjHXsP880u0Y5w3bOakCn5eDg+ppwjO48eg9aOY2UjghGOcfnUmxME8ntzT9oAGckZxgU"
    "u35sMM7h2rDmPx5SECjAJIz1zShTIRtzjPQ09UyAp4wc8U9QNu4nJ6fSjmNoyGLGMAe3ANATaAFAJqTb3xj+lPVT"
    "gAAZyaOY2jIjCc52ZPY5p2DtwCT3wakVQMHHHoOppwTk46njNHMbxkMEfzZ7gAjPQU4LtOD949MD+dS4xlRkg+h5"
    "/OhV4zjg+opcxtGQ1Y1LcjknnApVHOR7j7361InA2k/pnNOCZHqpPc0cxvGQ3BONvJHqKULk47cfT608j+HJz3x3"
    "/Onhfly/5+uaOY2jIYFIwc9sk+n40/y8fN3PHWn7cggjg9cHnFKV5HoPWjmNoyGBeBgZPY09UIGQRjjtyad9OR3w"
    "TTxuxnI4HejmN4yEKkjAyc55pCMkE4OegqTaDycr709VHIBOQPTkUcxtGQxFUDPUgZPFOCfNw2c96eFyAB+Y5pUV"
    "cDt+NLmN4yGqpOOpJHY9aeqkLk8Z/ix0p4UnJLZHQYJ9KUIQgwcke9HMbRkN2jC4wFHel25Kkg8ngZxxUgTPJY49"
    "fSnFQTkgYAPf6UcxvGQwRtvBB5PXFPVRtBHGD0zUgUtjgAg9xQq4ABBJHoaOY2jIauDkHr1we1KEPTJz25zxUirh"
    "sDn/ABp4UZPHJ/GjmNlI/9k="
)
"""A 240x160 baseline JPEG: three colour gradients with noise."""


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_from_rows(width: int, height: int, rows: bytes) -> bytes:
    """A PNG (8-bit RGB) from already filtered scanlines (each starts with a filter byte)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


@functools.lru_cache(maxsize=8)
def photo_png(width: int = 600, height: int = 400, seed: int = 1) -> bytes:
    """A photo-like RGB PNG: diagonal colour gradients under per-pixel noise."""
    rng = random.Random(seed)  # noqa: S311 - noise for a test picture, not a secret
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        noise = rng.randbytes(width * 3)
        for x in range(width):
            n = noise[3 * x] % 25 - 12
            rows.append(max(0, min(255, x * 255 // width + n)))
            rows.append(max(0, min(255, y * 255 // height + noise[3 * x + 1] % 25 - 12)))
            rows.append(max(0, min(255, 128 + (x - y) // 3 + noise[3 * x + 2] % 25 - 12)))
    return png_from_rows(width, height, bytes(rows))


def bomb_png(side: int = 50_000) -> bytes:
    """A PNG whose header claims ``side`` x ``side`` pixels (7.5 GB at 50k) over a tiny body.

    A codec must refuse it from the header, before allocating or inflating anything.
    """
    return png_from_rows(side, side, bytes(3 * side + 1) * 4)


def image_dimensions(data: bytes) -> tuple[int, int]:
    """Width and height read from a PNG, JPEG or WebP header, without decoding.

    Raises ``ValueError`` for anything else, so a test can check what a codec made.
    """
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_dimensions(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_dimensions(data)
    raise ValueError("not a PNG, JPEG or WebP image")


def _jpeg_dimensions(data: bytes) -> tuple[int, int]:
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            raise ValueError("damaged JPEG marker")
        marker = data[at + 1]
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if 0xC0 <= marker <= 0xCF and marker not in {0xC4, 0xC8, 0xCC}:
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return int(width), int(height)
        at += 2 + length
    raise ValueError("JPEG without a frame header")


def _webp_dimensions(data: bytes) -> tuple[int, int]:
    kind = data[12:16]
    if kind == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return int(width & 0x3FFF), int(height & 0x3FFF)
    if kind == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise ValueError("unknown WebP chunk")
