/* placeholder entry point, replaced by the real one */
#include <stdio.h>
int main(void)
{
    puts("dealimport supervisor");
    return 0;
}
