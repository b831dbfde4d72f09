/* converge.c — (being written) */
#include "internal.h"
