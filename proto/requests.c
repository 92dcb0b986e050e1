/* SPDX-License-Identifier: MIT */
/*
 * The requests table's predicates: see requests.h.
 */
#include "requests.h"

int shma_request_may_repeat(Shma__Request__BodyCase body_case)
{
	switch (body_case) {
#define XX(CASE, field, may_repeat, name_checked) \
	case SHMA__REQUEST__BODY_##CASE: return may_repeat;
		SHMA_REQUESTS(XX)
#undef XX
	default: return 0;
	}
}

int shma_request_name_checked(Shma__Request__BodyCase body_case)
{
	switch (body_case) {
#define XX(CASE, field, may_repeat, name_checked) \
	case SHMA__REQUEST__BODY_##CASE: return name_checked;
		SHMA_REQUESTS(XX)
#undef XX
	default: return 0;
	}
}

int shma_request_known(Shma__Request__BodyCase body_case)
{
	switch (body_case) {
#define XX(CASE, field, may_repeat, name_checked) \
	case SHMA__REQUEST__BODY_##CASE: return 1;
		SHMA_REQUESTS(XX)
#undef XX
	default: return 0;
	}
}
