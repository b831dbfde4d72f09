/* stream.c — (being written) */
#include "internal.h"
