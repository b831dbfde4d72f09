/* checkpoint.c — (being written) */
#include "internal.h"
