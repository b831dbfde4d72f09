/* sync.c — (being written) */
#include "internal.h"
