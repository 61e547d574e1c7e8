/* sup: placeholder until the claim module lands */
#include "sup_claim.h"
int sup_claim_placeholder(void)
{
    return 0;
}
