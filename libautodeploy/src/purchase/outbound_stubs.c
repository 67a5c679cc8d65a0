/* outbound_stubs.c - TEMPORARY: stand-ins for partner_mail.c and
 * approval_dingtalk.c, which are written in parallel (issue 11). Delete
 * this file when they are merged. Configuring either is refused at start
 * ("not built"), so nothing is silently skipped. */
#include "core/error_private.h"
#include "purchase/approval_dingtalk.h"
#include "purchase/partner_mail.h"

__attribute__((weak)) ad__partner_mail_t *ad__partner_mail_new(const json_t *conf, ad_error_t *err)
{
  ad__err(err, AD_ECONFIG, "config", "purchase.partner_mail: not built");
  return NULL;
}
__attribute__((weak)) void ad__partner_mail_destroy(ad__partner_mail_t **m_p) {}
__attribute__((weak)) int ad__partner_mail_send(ad__partner_mail_t *m, const json_t *orders,
                                                ad_error_t *err)
{
  return ad__err(err, AD_ECONFIG, "purchase", "partner mail: not built");
}
__attribute__((weak)) char *ad__partner_mail_render(ad__partner_mail_t *m, const json_t *orders,
                                                    ad_error_t *err)
{
  ad__err(err, AD_ECONFIG, "purchase", "partner mail: not built");
  return NULL;
}
__attribute__((weak)) ad__dt_approval_t *ad__dt_approval_new(const json_t *conf, ad_error_t *err)
{
  ad__err(err, AD_ECONFIG, "config", "purchase.approval.dingtalk: not built");
  return NULL;
}
__attribute__((weak)) void ad__dt_approval_destroy(ad__dt_approval_t **a_p) {}
__attribute__((weak)) int ad__dt_approval_create(ad__dt_approval_t *a, const json_t *order,
                                                 char **instance_id, ad_error_t *err)
{
  return ad__err(err, AD_ECONFIG, "purchase", "DingTalk approval: not built");
}
__attribute__((weak)) int ad__dt_approval_poll(ad__dt_approval_t *a, const char *instance_id,
                                               char **who, ad_error_t *err)
{
  return ad__err(err, AD_ECONFIG, "purchase", "DingTalk approval: not built");
}
