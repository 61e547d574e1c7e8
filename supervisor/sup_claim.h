#ifndef SUP_CLAIM_H
#define SUP_CLAIM_H
int sup_claim_placeholder(void);
#endif
