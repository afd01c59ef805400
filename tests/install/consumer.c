/*
 * Install test: a program outside the tree that uses an installed weave
 * through pkg-config or find_package(weave). Prints the library version and
 * succeeds when it looks like one ("0.1.0").
 */
#include <weave/rt.h>

#include <stdio.h>

int main(void)
{
    const char *version = wv_version();

    if (version == NULL) {
        fprintf(stderr, "wv_version() returned NULL\n");
        return 1;
    }
    printf("weave %s\n", version);
    return (version[0] >= '0' && version[0] <= '9') ? 0 : 1;
}
