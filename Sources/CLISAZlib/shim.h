// zlib, for inflating the one entry LISA reads from DOCX uploads (Debian: zlib1g-dev).
#include <zlib.h>
